import Database from 'better-sqlite3';
import { StorageError, storageFailure } from './errors.js';

/**
 * An exclusive lock on one peer file, held as SQLite's own lock on a small
 * companion database (`<file>-lock`) kept in exclusive locking mode. SQLite
 * arbitrates it between threads of one process and between processes, and
 * it dies with its holder: a worker's end closes the connection, a killed
 * process loses its file locks. The peer file itself is held exclusively
 * too unless it is opened with shareReads (the lab harness reads running
 * peers' files); this lock is what refuses a second peer either way, with
 * a clear error and at once.
 */
export class PeerFileLock {
  private db: Database.Database | undefined;

  constructor(
    readonly file: string,
    binding: { nativeBinding?: string },
  ) {
    const lockFile = `${file}-lock`;
    let db: Database.Database | undefined;
    try {
      db = new Database(lockFile, { timeout: 0, ...binding });
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('journal_mode = MEMORY');
      db.pragma('synchronous = OFF');
      // A write transaction takes the exclusive lock; exclusive locking mode keeps it until close.
      db.exec('BEGIN EXCLUSIVE; COMMIT');
    } catch (e) {
      db?.close();
      const err = storageFailure(e, file, `taking the lock ${lockFile}`);
      if (err.code === 'locked') {
        throw new StorageError('locked', file, 'is in use by another open peer (in this process or another); two peers must never share a file', {
          cause: err.systemCode,
        });
      }
      throw err;
    }
    this.db = db;
  }

  release(): void {
    this.db?.close();
    this.db = undefined;
  }
}
