/** The pgwarden CLI and agent. Placeholder until the CLI lands. */
export const VERSION = '0.1.0';
