/** Runs a CLI command function with captured output, as the tests drive every command. */
import type { Io } from './doctor.js';

export interface Captured {
  code: number;
  stdout: string;
  stderr: string;
}

/** Calls `command(flags, io)` with an io that collects stdout/stderr (no TTY, 80 columns). */
export async function captured<F>(
  command: (flags: F, io: Io) => Promise<number>,
  flags: F,
  env: Record<string, string | undefined> = {},
): Promise<Captured> {
  let stdout = '';
  let stderr = '';
  const code = await command(flags, {
    out: (t) => {
      stdout += t;
    },
    err: (t) => {
      stderr += t;
    },
    env,
    isTTY: false,
    columns: 80,
  });
  return { code, stdout, stderr };
}
