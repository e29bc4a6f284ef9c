import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { UsageError } from '../errors.ts';
import { checkSyntax, describeJobError } from '../job/code-location.ts';
import { isJob, type Job } from '../job/define.ts';

/** Import a job file and return its default-exported job, or say plainly what is wrong. */
export async function loadJob(file: string): Promise<Job> {
  const path = resolve(file);
  if (!existsSync(path)) throw new UsageError(`job file not found: ${file}`);
  if (!statSync(path).isFile()) throw new UsageError(`job file is not a file: ${file}`);
  let module: { default?: unknown };
  try {
    module = (await import(pathToFileURL(path).href)) as { default?: unknown };
  } catch (error) {
    // A syntax error (or a throw while the module runs) names the file:line:col it comes from.
    let described = describeJobError(error, path);
    if (error instanceof SyntaxError && !/ at \S+:\d+(:\d+)?$/.test(described)) {
      const where = checkSyntax(path);
      if (where !== undefined) described = `${described} at ${where}`;
    }
    throw new UsageError(`cannot load job file ${file}: ${described}`, { cause: error });
  }
  if (!isJob(module.default)) {
    throw new UsageError(`${file} does not default-export a job; end it with: export default defineJob({ name, source, process })`);
  }
  return module.default;
}

/** Parse repeated `--param k=v` into an object; a later value for the same key wins. */
export function parseParams(pairs: string[]): { [key: string]: string } {
  // No prototype: `--param __proto__=x` is a param like any other, not silently dropped.
  const params: { [key: string]: string } = Object.create(null);
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new UsageError(`--param must be key=value (got ${JSON.stringify(pair)})`);
    params[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return params;
}
