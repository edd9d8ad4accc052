/**
 * knownNodeDefect names a defect of the running Node.js that affects Parley, or undefined.
 * Node 24.20–24.x and 26.3+ report a premature close when an HTTP/2 response body that is
 * already buffered is read by async iteration (nodejs/node#65677); connect-node's client reads
 * every unary response that way, so calls fail at random with "[unknown] Premature close" under
 * load. Parley pins Node 24.19.0 until a fixed release exists.
 */
export function knownNodeDefect(version: string): string | undefined {
  const [major = 0, minor = 0] = version.replace(/^v/, '').split('.').map(Number);
  if ((major === 24 && minor >= 20) || (major === 26 && minor >= 3)) {
    return `Node ${version} has nodejs/node#65677 (HTTP/2 responses fail with "Premature close" under load); use Node 24.19.0`;
  }
  return undefined;
}
