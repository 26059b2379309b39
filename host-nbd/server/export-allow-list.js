// @ts-check
// An export allow-list (--allow-export): only the named devices are NBD exports; the others
// (layers a table stacks on, devices made later through the control socket) are neither listed
// nor reachable by NBD clients, who get the same answer as for a name that does not exist.

/**
 * @template {{name: string}} E
 * @param {{getExport(name: string): E | null, listExports(): E[]}} exports
 * @param {string[]} names
 */
export function allowExports(exports, names) {
  const allowed = new Set(names);
  const view = {
    listExports: () => exports.listExports().filter((e) => allowed.has(e.name)),
    /** @param {string} name */
    getExport(name) {
      const e = exports.getExport(name);
      if (e && allowed.has(e.name)) return e;
      // The empty name asks for the default export: the first allowed one when the server's
      // default is not allowed.
      return name === '' ? view.listExports()[0] ?? null : null;
    },
  };
  return view;
}
