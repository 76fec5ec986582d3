/** Splits raw terminal input into keys: arrows, Enter, Esc, Backspace, Ctrl-C and characters. */
export type Key =
  | { name: 'up' | 'down' | 'enter' | 'escape' | 'backspace' | 'interrupt' }
  | { name: 'char'; char: string };

export function parseKeys(data: string): Key[] {
  const keys: Key[] = [];
  let i = 0;
  while (i < data.length) {
    const ch = data[i] as string;
    if (ch === '\x1b') {
      // CSI or SS3 arrows (ESC [ A, ESC O A); anything else after ESC is a lone Esc.
      const next = data[i + 1];
      if ((next === '[' || next === 'O') && i + 2 < data.length) {
        let j = i + 2;
        while (j < data.length && /[0-9;]/.test(data[j] as string)) j++;
        const final = data[j];
        if (final === 'A') keys.push({ name: 'up' });
        else if (final === 'B') keys.push({ name: 'down' });
        i = j + 1;
        continue;
      }
      keys.push({ name: 'escape' });
      i++;
      continue;
    }
    if (ch === '\r' || ch === '\n') keys.push({ name: 'enter' });
    else if (ch === '\x7f' || ch === '\b') keys.push({ name: 'backspace' });
    else if (ch === '\x03') keys.push({ name: 'interrupt' });
    else if (ch >= ' ') keys.push({ name: 'char', char: ch });
    i++;
  }
  return keys;
}
