/** Counters per origin, as `koto doctor`, `koto status` and the tests read them. */
export interface OriginStats {
  /** Connections opened (TCP, plus TLS for https). */
  connections: number;
  /** Connections open right now. */
  open: number;
  tlsHandshakes: number;
  /** Handshakes that resumed an earlier TLS session (cheaper, still a round trip). */
  tlsResumed: number;
  /** Negotiated protocol per connection: `h2` or `http/1.1`. */
  protocols: Record<string, number>;
  lastProtocol: string | undefined;
  requests: number;
  inFlight: number;
  prewarms: number;
}

export interface TransportStats {
  generation: number;
  http2: boolean;
  uploadsOverHttp1: boolean;
  /** Old clients still draining after a rebuild. */
  retiring: number;
  /** Sockets of the current client that are open. */
  openSockets: number;
  origins: Record<string, OriginStats>;
}

export function originStats(): OriginStats {
  return {
    connections: 0,
    open: 0,
    tlsHandshakes: 0,
    tlsResumed: 0,
    protocols: {},
    lastProtocol: undefined,
    requests: 0,
    inFlight: 0,
    prewarms: 0,
  };
}
