/**
 * An error that maps to an HTTP status and a plain-text body, the way Consul's HTTP layer
 * reports failures (RPC errors are 500 with the error text as the body).
 */
export class ConsulHttpError extends Error {
  override name = 'ConsulHttpError';
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** An RPC-level failure: Consul answers these with 500 and the message. */
export const rpcError = (message: string) => new ConsulHttpError(500, message);

export const badRequest = (message: string) => new ConsulHttpError(400, message);
