import ConvergeCore
import Foundation

/// The one daemon allowed on an embedded SQLite database: an exclusive `flock` on `<database>.lock`, which the
/// kernel releases when the process exits however it exits (`kill -9` included), so a crash never leaves a stale
/// lock behind. The file says who holds it, for the error a second daemon gets.
///
/// SQLite itself would let two daemons share the file, and each would run its own concurrency limit; until a store
/// for several daemons exists, the second refuses to start.
public final class DaemonLock: Sendable {
    /// The lock file's descriptor, held open (and so locked) for the life of the process.
    let descriptor: Int32
    public let path: String

    /// Takes the lock of the database at `databasePath` for `holder` (who and where, for people), or throws
    /// `failed_precondition` naming the daemon that holds it.
    public init(databasePath: String, holder: String) throws {
        path = databasePath + ".lock"
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw ConvergeError(.internal, "cannot open lock file \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let lockError = errno
            let current = Self.contents(of: descriptor)
            close(descriptor)
            guard lockError == EWOULDBLOCK else {
                throw ConvergeError(.internal, "cannot lock \(path): \(String(cString: strerror(lockError)))")
            }
            throw ConvergeError(
                .failedPrecondition,
                "the database \(databasePath) is in use by another converge daemon (\(current.isEmpty ? "holder unknown" : current)); "
                    + "stop it first, or give this daemon a database of its own",
                details: ["lockFile": .string(path), "holder": .string(current)])
        }
        let text = Array("\(holder)\n".utf8)
        guard ftruncate(descriptor, 0) == 0, pwrite(descriptor, text, text.count, 0) == text.count else {
            let message = String(cString: strerror(errno))
            close(descriptor)
            throw ConvergeError(.internal, "cannot write lock file \(path): \(message)")
        }
        self.descriptor = descriptor
    }

    /// A description of this process for the lock file: pid, host and start time.
    public static var processDescription: String {
        let info = ProcessInfo.processInfo
        return "pid \(info.processIdentifier) on host \(info.hostName), since \(Date().formatted(.iso8601))"
    }

    private static func contents(of descriptor: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 512)
        let count = pread(descriptor, &buffer, buffer.count, 0)
        guard count > 0 else { return "" }
        return String(decoding: buffer[..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
