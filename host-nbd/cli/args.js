// @ts-check
// A small strict option parser: unknown options and missing values are errors, not guesses.

export class UsageError extends Error {}

/**
 * @typedef {{type: 'string'|'boolean'|'list'|'pairs', short?: string}} OptionSpec
 * `list` repeats one value; `pairs` repeats two values (--device NAME TABLE).
 * @param {string[]} argv
 * @param {Record<string, OptionSpec>} spec
 * @returns {{options: Record<string, any>, positional: string[]}}
 */
export function parseArgs(argv, spec) {
  /** @type {Record<string, any>} */
  const options = {};
  const positional = [];
  const shorts = Object.fromEntries(Object.entries(spec).filter(([, s]) => s.short).map(([k, s]) => [s.short, k]));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') { positional.push(...argv.slice(i + 1)); break; }
    let name, inline;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
      inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    } else if (arg.startsWith('-') && arg.length === 2 && shorts[arg[1]]) {
      name = shorts[arg[1]];
    } else if (arg.startsWith('-') && arg.length > 1) {
      throw new UsageError(`unknown option ${arg}`);
    } else {
      positional.push(arg);
      continue;
    }
    const s = spec[name];
    if (!s) throw new UsageError(`unknown option --${name}`);
    const take = () => {
      let v;
      if (inline !== undefined) { v = inline; inline = undefined; } else {
        if (i + 1 >= argv.length) throw new UsageError(`--${name} needs a value`);
        v = argv[++i];
      }
      // An empty value is a variable that was not set (--control "$X"), never a choice.
      if (v === '') throw new UsageError(`--${name} needs a value, got an empty one`);
      return v;
    };
    if (s.type === 'boolean') {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value`);
      options[name] = true;
    } else if (s.type === 'string') {
      options[name] = take();
    } else if (s.type === 'list') {
      (options[name] ??= []).push(take());
    } else {
      const first = take();
      if (i + 1 >= argv.length) throw new UsageError(`--${name} needs two values`);
      (options[name] ??= []).push([first, argv[++i]]);
    }
  }
  return { options, positional };
}
