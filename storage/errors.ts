/**
 * Why a peer's storage file cannot be used. The file is never reset or
 * repaired: every refusal leaves it as it was found.
 *  - corrupt: not a readable database, or a stored value fails its checksum
 *  - not-raft: a SQLite database (or an empty file) that is not a peer store
 *  - unknown-version: a schema version this code does not read
 *  - wrong-peer: the file is recorded for another peer
 *  - wal-missing: the last session did not close, and its write-ahead log is gone
 *  - wal-orphaned: a write-ahead log with no database beside it
 *  - locked: another open peer (in this process or another) holds the file
 *  - read-only: the file or its directory cannot be written
 *  - io: the file system failed (cannot create, disk full, I/O error)
 */
export type StorageErrorCode =
  | 'corrupt'
  | 'not-raft'
  | 'unknown-version'
  | 'wrong-peer'
  | 'wal-missing'
  | 'wal-orphaned'
  | 'locked'
  | 'read-only'
  | 'io';

export interface StorageErrorDetails {
  /** The log index of the entry at fault, when one is. */
  index?: number;
  /** The underlying SQLite or system error code (SQLITE_READONLY, EACCES, ...). */
  cause?: string;
}

/** A storage file that must not be used, or that failed while in use. */
export class StorageError extends Error {
  override name = 'StorageError';
  readonly index?: number;
  readonly systemCode?: string;
  constructor(
    readonly code: StorageErrorCode,
    readonly file: string,
    message: string,
    details: StorageErrorDetails = {},
  ) {
    super(`${file}: ${message}`);
    if (details.index !== undefined) this.index = details.index;
    if (details.cause !== undefined) this.systemCode = details.cause;
  }
}

function codeOf(e: unknown): string | undefined {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : undefined;
}

function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  const m = (e as { message?: unknown } | null)?.message;
  return typeof m === 'string' && m ? m : String(codeOf(e) ?? e);
}

/** Turn what SQLite or the file system threw while `doing` something into a StorageError naming the file. */
export function storageFailure(e: unknown, file: string, doing: string): StorageError {
  if (e instanceof StorageError) return e;
  const cause = codeOf(e);
  const why = messageOf(e);
  const details = cause ? { cause } : {};
  const said = `${doing} failed: ${why}${cause && !why.includes(cause) ? ` (${cause})` : ''}`;
  if (cause?.startsWith('SQLITE_BUSY') || cause?.startsWith('SQLITE_LOCKED')) {
    return new StorageError('locked', file, `${said}; another open peer holds the file`, details);
  }
  if (cause?.startsWith('SQLITE_READONLY') || cause === 'EACCES' || cause === 'EPERM' || cause === 'EROFS') {
    return new StorageError('read-only', file, `${said}; the file or its directory cannot be written`, details);
  }
  if (cause?.startsWith('SQLITE_CORRUPT') || cause === 'SQLITE_NOTADB') return new StorageError('corrupt', file, said, details);
  return new StorageError('io', file, said, details);
}
