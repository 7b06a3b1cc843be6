export * from './messages.js';
export * from './errors.js';
export * from './codec.js';
export * from './transport.js';
export * from './ws-transport.js';
export * from './in-memory-transport.js';
