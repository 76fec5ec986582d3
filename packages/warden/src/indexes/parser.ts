/**
 * The real PostgreSQL parser (libpg_query, compiled to WebAssembly by the npm package `libpg-query`).
 *
 * The package ships its .wasm file and reads it from disk with `fs` under Node: nothing is
 * downloaded at run time. It starts compiling the module as soon as it is imported (~40 ms), so it
 * is imported here lazily, only by the commands that parse SQL. After `loadParser()` resolved, the
 * parser is synchronous (`parseSync`, `scanSync`), which keeps the analysis pure and simple.
 */

/** A node of libpg_query's JSON parse tree: `{ NodeType: { ...fields } }` or a plain field object. */
export type PgNode = Record<string, unknown>;

export interface ParsedSql {
  /** The statements of the text, each `{ stmt: { SelectStmt: {...} }, stmt_location?, stmt_len? }`. */
  stmts: { stmt?: PgNode; stmt_location?: number; stmt_len?: number }[];
}

export interface Parser {
  /** Parses SQL (placeholders `$1` allowed). Throws an Error with PostgreSQL's message on a syntax error. */
  parse(sql: string): ParsedSql;
  /** Whether `word` is a keyword that must be quoted as an identifier (all but unreserved ones). */
  needsQuotingAsKeyword(word: string): boolean;
  /** The PostgreSQL version whose grammar the parser implements, e.g. 180004. */
  readonly grammarVersion: number;
}

interface LibPgQuery {
  loadModule(): Promise<void>;
  parseSync(sql: string): { version: number; stmts?: ParsedSql['stmts'] };
  scanSync(sql: string): { tokens: { text: string; keywordKind: number }[] };
}

let loading: Promise<Parser> | undefined;

/** Loads (once) and returns the parser. */
export function loadParser(): Promise<Parser> {
  loading ??= (async () => {
    const lib = (await import('libpg-query')) as unknown as LibPgQuery;
    await lib.loadModule();
    const grammarVersion = lib.parseSync('SELECT 1').version;
    const keywordCache = new Map<string, boolean>();
    return {
      grammarVersion,
      parse(sql: string): ParsedSql {
        if (sql.trim() === '') throw new Error('empty statement');
        const result = lib.parseSync(sql);
        return { stmts: result.stmts ?? [] };
      },
      needsQuotingAsKeyword(word: string): boolean {
        let known = keywordCache.get(word);
        if (known === undefined) {
          // keywordKind: 0 not a keyword, 1 unreserved, 2 column name, 3 type/function name, 4 reserved.
          // PostgreSQL's quote_ident() quotes every keyword but the unreserved ones; so do we.
          let tokens: { text: string; keywordKind: number }[] = [];
          try {
            tokens = lib.scanSync(word).tokens;
          } catch {
            tokens = [];
          }
          known = tokens.length === 1 && (tokens[0]?.keywordKind ?? 0) >= 2;
          keywordCache.set(word, known);
        }
        return known;
      },
    };
  })();
  loading.catch(() => {
    loading = undefined;
  });
  return loading;
}
