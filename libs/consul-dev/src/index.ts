export { startConsulDevServer, decodeSessionCreate, type ConsulDevServer, type ConsulDevServerOptions } from './server';
export { parseGoDuration, formatGoDuration, GoDurationError } from './duration';
export { ConsulStore, type KvEntry, type Session, type SessionCreateRequest, type StoreOptions } from './store';
export { ConsulHttpError } from './errors';
