/** A TCP address as flags and configuration name it: "host:port", or "[v6]:port". */
export interface HostPort {
  host: string;
  port: number;
}

export class AddressError extends Error {
  override name = 'AddressError';
}

/** Parse "host:port" ("[::1]:2380" for IPv6); throws AddressError naming what is wrong. */
export function parseHostPort(text: string, what: string): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text);
  if (!m) throw new AddressError(`${what}: ${JSON.stringify(text)} is not host:port`);
  const port = Number(m[3]);
  if (port > 65535) throw new AddressError(`${what}: port ${port} is past 65535`);
  return { host: m[1] ?? m[2]!, port };
}

export function formatHostPort(a: HostPort): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
