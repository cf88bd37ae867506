export interface ConsulAddress {
  host: string;
  port: number;
  secure: boolean;
}

/**
 * Parses CONSUL_HTTP_ADDR forms: `host:port`, `http://host:port`, `https://host:port`,
 * a bare host (port 8500, as the Consul CLI assumes) and bracketed IPv6 (`[::1]:8500`).
 */
export function parseConsulAddr(addr: string): ConsulAddress {
  const trimmed = addr.trim().replace(/\/+$/, '');
  if (trimmed === '') throw new Error('Consul address is empty');
  const scheme = /^([a-z]+):\/\//i.exec(trimmed)?.[1]?.toLowerCase();
  if (scheme !== undefined && scheme !== 'http' && scheme !== 'https') {
    throw new Error(`unsupported Consul address scheme "${scheme}" in "${addr}"`);
  }
  let url: URL;
  try {
    url = new URL(scheme ? trimmed : `http://${trimmed}`);
  } catch {
    throw new Error(`invalid Consul address "${addr}" (want host:port or http://host:port)`);
  }
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '' || url.username !== '') {
    throw new Error(`invalid Consul address "${addr}" (want host:port or http://host:port)`);
  }
  const secure = url.protocol === 'https:';
  return { host: url.hostname, port: url.port === '' ? (secure ? 443 : 8500) : Number(url.port), secure };
}

/** The base URL of a parsed address, e.g. `http://127.0.0.1:8500`. */
export function consulBaseUrl({ host, port, secure }: ConsulAddress): string {
  return `${secure ? 'https' : 'http'}://${host}:${port}`;
}
