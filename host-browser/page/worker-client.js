// @ts-check
// The page's side of the worker: call(method, args) returns a promise of the worker's answer
// (rejected with an Error carrying the worker's message and errno code); events go to listeners.

export class WorkerClient {
  /** @param {Worker} worker */
  constructor(worker) {
    this.worker = worker;
    this.nextId = 1;
    /** @type {Map<number, {resolve: (v: any) => void, reject: (e: Error) => void}>} */
    this.calls = new Map();
    /** @type {Map<string, Array<(data: any) => void>>} */
    this.listeners = new Map();
    worker.onmessage = (ev) => {
      const msg = ev.data;
      if (msg.event) {
        for (const fn of this.listeners.get(msg.event) ?? []) fn(msg);
        return;
      }
      const call = this.calls.get(msg.id);
      if (!call) return;
      this.calls.delete(msg.id);
      if (msg.error) call.reject(Object.assign(new Error(msg.error.message), { code: msg.error.code }));
      else call.resolve(msg.result);
    };
  }

  /** @returns {Promise<any>} */
  call(method, args = {}) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.calls.set(id, { resolve, reject });
      this.worker.postMessage({ id, method, args });
    });
  }

  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, []);
    /** @type {any} */ (this.listeners.get(event)).push(fn);
  }
}
