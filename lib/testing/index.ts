export * from './config.js';
export * from "./kv-config.js";
