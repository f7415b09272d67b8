/**
 * The credential helper: `node credential-helper.js [--kubeconfig FILE]` loads the kubeconfig
 * with client-node (in-cluster service account without the flag), asks it for the options of
 * one request (applyToHTTPSOptions: TLS material, token, token file, exec or auth-provider
 * plugin) and prints them as one line of JSON (encodeRequestAuth), then exits 0.
 * A kubeconfig that cannot be loaded: the message on stderr, exit 2; any other failure
 * (an exec plugin failing, an unreadable token file): exit 1.
 *
 * The agent runs it in place of loading client-node itself (credentials.ts says why).
 */
import { HELPER_USAGE_EXIT, encodeRequestAuth, requestAuthOf } from './credentials.js';
import { loadKubeConfig } from './kubeconfig.js';

async function main(argv: readonly string[]): Promise<number> {
  let path: string | undefined;
  if (argv.length === 2 && argv[0] === '--kubeconfig') path = argv[1];
  else if (argv.length !== 0) {
    process.stderr.write('usage: credential-helper.js [--kubeconfig FILE]\n');
    return HELPER_USAGE_EXIT;
  }
  let kc;
  try {
    kc = loadKubeConfig(path);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return HELPER_USAGE_EXIT;
  }
  try {
    process.stdout.write(encodeRequestAuth(await requestAuthOf(kc)) + '\n');
    return 0;
  } catch (err) {
    process.stderr.write(`${(err as Error).message.split('\n')[0]}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
