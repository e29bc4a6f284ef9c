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
    const setup = projectSetupHint(error, file);
    if (setup !== undefined) throw new UsageError(setup, { cause: error });
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

/**
 * The two ways a job written in a project of one's own fails to load before any of its code runs,
 * said as what to do (docs/jobs.md, "In your own project"): the package is not installed where
 * Node looks from the job file, or the job file sits in a CommonJS package (`npm init -y` writes
 * `"type": "commonjs"`), where Node reads its `import` as a syntax error.
 */
function projectSetupHint(error: unknown, file: string): string | undefined {
  const message = error instanceof Error ? error.message : '';
  if ((error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && message.startsWith("Cannot find package 'checkpointed'")) {
    return `cannot load job file ${file}: cannot find the package 'checkpointed' from it; install it in the job's project (npm install <path to a checkpointed checkout or its npm pack tarball>), see docs/jobs.md`;
  }
  if (error instanceof SyntaxError && /^Cannot use import statement outside a module/.test(message)) {
    return `cannot load job file ${file}: job files are ES modules, but its package.json makes it CommonJS; set "type": "module" there (npm pkg set type=module) or name the file .mts`;
  }
  return undefined;
}

/**
 * Parse repeated `--param k=v` into an object. A key given twice is refused: keeping either value
 * silently would run an instance the operator did not name. So is a key or value holding U+FFFD:
 * Node decodes argv as UTF-8 and hands over every byte that is not UTF-8 as U+FFFD before we see
 * it, so `a=\xff` and `a=\xfe` would name one instance.
 */
export function parseParams(pairs: string[]): { [key: string]: string } {
  // No prototype: `--param __proto__=x` is a param like any other, not silently dropped.
  const params: { [key: string]: string } = Object.create(null);
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new UsageError(`--param must be key=value (got ${JSON.stringify(pair)})`);
    const key = pair.slice(0, at);
    const value = pair.slice(at + 1);
    if (Object.hasOwn(params, key)) {
      // The values are not shown: a param may hold a secret.
      throw new UsageError(`--param ${key} is given twice; give each param once`);
    }
    if (key.includes('\uFFFD')) throw new UsageError(`--param ${JSON.stringify(key)}: its name is not valid UTF-8 (or holds U+FFFD); give it as UTF-8 text`);
    if (value.includes('\uFFFD')) {
      throw new UsageError(
        `--param ${key}: its value is not valid UTF-8 (or holds U+FFFD, which is how such bytes reach ckpt, so two different values would name one instance); give it as UTF-8 text`,
      );
    }
    params[key] = value;
  }
  return params;
}
