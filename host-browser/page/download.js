// @ts-check
// Hands a file the worker wrote to OPFS's exports/ folder to the browser's download. The File
// from getFile() is backed by disk, so even a large device is never held in memory.

/** @param {string} fileName */
export async function downloadExport(fileName) {
  const root = await navigator.storage.getDirectory();
  const dir = await root.getDirectoryHandle('exports');
  const file = await (await dir.getFileHandle(fileName)).getFile();
  const url = URL.createObjectURL(file);
  const a = document.createElement('a');
  a.href = url;
  a.download = fileName;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
