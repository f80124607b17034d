import CXattr
import ConvergeCore
import Foundation

/// The one daemon allowed on an embedded SQLite database: an exclusive `flock` on the database file itself, which
/// the kernel releases when the process exits however it exits (`kill -9` included), so a crash never leaves a
/// stale lock behind.
///
/// The lock belongs to the file's inode, not to its name: a second daemon given the database through a symlink or a
/// hard link (whose `-wal` file SQLite would name after the link, corrupting the database) finds it taken. On Linux
/// `flock` locks and the POSIX `fcntl` locks SQLite takes are independent, so the lock never blocks SQLite; and the
/// descriptor stays open for the life of the process, because closing a descriptor of the database would drop the
/// POSIX locks SQLite holds on it. Who holds the lock is written in an extended attribute of the file (an inode's,
/// like the lock), for the error a second daemon gets.
///
/// SQLite itself would let two daemons share the file, and each would run its own concurrency limit; until a store
/// for several daemons exists, the second refuses to start.
public final class DaemonLock: Sendable {
    /// The database file's descriptor, held open (and so locked) for the life of the process.
    let descriptor: Int32

    /// The extended attribute that names the daemon holding the lock.
    static let holderAttribute = "user.converge.daemon"

    /// Takes the lock of the database at `databasePath` (created empty, for its owner only, if it does not exist) for
    /// `holder` (who and where, for people), or throws `failed_precondition` naming the daemon that holds it.
    public init(databasePath: String, holder: String) throws {
        let descriptor = open(databasePath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw ConvergeError(.internal, "cannot open database \(databasePath): \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let lockError = errno
            let current = Self.holder(of: descriptor)
            close(descriptor)
            guard lockError == EWOULDBLOCK else {
                throw ConvergeError(.internal, "cannot lock \(databasePath): \(String(cString: strerror(lockError)))")
            }
            throw ConvergeError(
                .failedPrecondition,
                "the database \(databasePath) is in use by another converge daemon (\(current ?? "holder unknown")); "
                    + "stop it first, or give this daemon a database of its own",
                details: ["holder": .string(current ?? "")])
        }
        // Best effort: a file system without extended attributes still gets the lock, and the error says
        // "holder unknown".
        let text = Array(holder.utf8)
        _ = setAttribute(descriptor, Self.holderAttribute, text, text.count)
        self.descriptor = descriptor
    }

    /// A description of this process for the lock: pid, host and start time.
    public static var processDescription: String {
        let info = ProcessInfo.processInfo
        return "pid \(info.processIdentifier) on host \(info.hostName), since \(Date().formatted(.iso8601))"
    }

    /// The description the holding daemon wrote, if the file system keeps it.
    private static func holder(of descriptor: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: 512)
        let count = getAttribute(descriptor, holderAttribute, &buffer, buffer.count)
        guard count > 0 else { return nil }
        return String(decoding: buffer[..<count], as: UTF8.self)
    }
}

#if canImport(Darwin)
    private func setAttribute(_ descriptor: Int32, _ name: String, _ value: [UInt8], _ size: Int) -> Int32 {
        fsetxattr(descriptor, name, value, size, 0, 0)
    }
    private func getAttribute(_ descriptor: Int32, _ name: String, _ value: inout [UInt8], _ size: Int) -> Int {
        fgetxattr(descriptor, name, &value, size, 0, 0)
    }
#else
    private func setAttribute(_ descriptor: Int32, _ name: String, _ value: [UInt8], _ size: Int) -> Int32 {
        fsetxattr(descriptor, name, value, size, 0)
    }
    private func getAttribute(_ descriptor: Int32, _ name: String, _ value: inout [UInt8], _ size: Int) -> Int {
        fgetxattr(descriptor, name, &value, size)
    }
#endif
