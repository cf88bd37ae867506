export * from './envelope';
export * from './keys';
export * from './message';
