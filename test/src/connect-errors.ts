// What a call that must fail failed with, for tests of clients.
import { ConnectError } from '@connectrpc/connect';

/** errorOf awaits a call that must fail and returns its ConnectError; a success or another error fails the test. */
export async function errorOf(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ConnectError) return err;
    throw new Error(`the call failed with something other than a ConnectError: ${String(err)}`, { cause: err });
  }
  throw new Error('the call succeeded');
}
