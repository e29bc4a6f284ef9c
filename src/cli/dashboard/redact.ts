// The dashboard shows what the CLI shows, redacted by the same function (src/redact.ts).
export { redactJson, redactText } from '../../redact.ts';
