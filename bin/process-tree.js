// Where this process sits among the processes above it, read from /proc (Linux): what `ckpt`
// (bin/ckpt.js) and scripts/with-node.mjs watch to die with the launcher that started them. Plain
// JavaScript, as both run before anything is compiled, and with-node under an older Node.
import { readFileSync } from 'node:fs';

/** The parent pid of `pid`, or undefined if it is gone (or this is not Linux). */
export function parentOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/** Whether `pid` is npm (`npm run`, `npm exec` of `npx`), by the name its process gives itself. */
export function isNpm(pid) {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('npm');
  } catch {
    return false;
  }
}
