// @ts-check
// dmkit's command line: one verb per subcommand, errors as one line and a non-zero exit.
import { UsageError } from './args.js';
import { dmsetupCommands, runDmsetupCommand } from './dmsetup.js';

const HELP = `Usage: dmkit <command> [options]

Serving:
  serve        serve mapped devices over NBD (with no devices: a 1 GiB disk and its snapshot)
  demo         serve the in-browser dmkit on loopback and print its URL

Changing a running server (dmsetup's verbs, over its control socket):
  ls, create, reload, load, suspend, resume, remove, clear, status, table, info, message, wait
  exports      the NBD exports with their connections and requests
  set-time     move the clock of a server started with --test-clock

Kernel block devices without nbd-client (Linux, root, nbd module):
  attach NAME [/dev/nbdN]   the running server attaches export NAME (first free device if none)
  detach /dev/nbdN          flush and detach a device

Snapshots without a kernel:
  snapshot inspect COW [--json]       show a dm-snapshot COW device
  snapshot merge --origin IMG --cow COW   fold a snapshot back into its origin image

Run 'dmkit <command> --help' for the options of a command.
`;

/** @param {string[]} argv */
export async function main(argv) {
  // 'dmkit help X' is 'dmkit X --help', as git has it.
  if (argv[0] === 'help' && argv.length > 1) argv = [argv[1], '--help'];
  const [cmd, ...rest] = argv;
  try {
    if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
      process.stdout.write(HELP);
      if (!cmd) process.exitCode = 2;
      return;
    }
    if (cmd.startsWith('-')) throw new UsageError(`unknown option ${cmd}\n\n${HELP}`);
    if (cmd === 'serve') {
      const { serve } = await import('./serve.js');
      await serve(rest);
    } else if (cmd === 'demo') {
      const { demoCommand } = await import('../../host-browser/serve.js');
      await demoCommand(rest);
    } else if (cmd === 'snapshot') {
      const { snapshotCommand } = await import('./snapshot.js');
      await snapshotCommand(rest);
    } else if (cmd === 'attach' || cmd === 'detach') {
      const { attachCommand, detachCommand } = await import('./attach.js');
      await (cmd === 'attach' ? attachCommand(rest) : detachCommand(rest));
    } else if (dmsetupCommands.includes(cmd)) {
      const out = await runDmsetupCommand(cmd, rest);
      if (out) process.stdout.write(out.endsWith('\n') ? out : out + '\n');
    } else {
      throw new UsageError(`unknown command '${cmd}'\n\n${HELP}`);
    }
  } catch (e) {
    // One line, always: a usage error points at the help instead of printing it.
    let message = e instanceof Error ? e.message : String(e);
    if (e instanceof UsageError && message.includes('\n')) {
      const helpCmd = dmsetupCommands.includes(cmd) || ['serve', 'snapshot', 'attach', 'detach', 'demo'].includes(cmd) ? ` ${cmd}` : '';
      message = `${message.split('\n')[0]} (see 'dmkit${helpCmd} --help')`;
    }
    const who = cmd.startsWith('-') ? 'dmkit' : `dmkit ${cmd}`;
    process.stderr.write(`${who}: ${message.replace(/\n+/g, ' ')}\n`);
    process.exitCode = e instanceof UsageError ? 2 : 1;
  }
}
