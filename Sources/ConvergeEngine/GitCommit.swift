import ConvergeCore
import Foundation
import Subprocess

/// The git commit of a manifests directory, for deployment metadata, with every field bounded.
public struct GitCommit: Equatable, Sendable {
    static let maxMessage = 10_240
    static let maxAuthor = 256
    static let maxAvatarURL = 512

    public var sha: String
    public var message: String
    public var author: String
    public var avatarURL: String?
    /// Unix milliseconds.
    public var time: Int64?

    /// The commit as deployment metadata records it.
    public var value: Value {
        var value: [String: Value] = ["sha": .string(sha), "message": .string(message), "author": .string(author)]
        if let avatarURL { value["authorAvatarURL"] = .string(avatarURL) }
        if let time { value["time"] = .int(Int(time)) }
        return .object(value)
    }

    /// A commit from what `git log` printed, cutting or dropping values past their bounds; each cut or drop is a
    /// warning. Nil (with a warning) when the sha is not a commit id.
    static func sanitized(
        sha: String, message: String, author: String, email: String, committedAt seconds: String, now: Date,
        avatarTemplate: String?
    ) -> (commit: GitCommit?, warnings: [String]) {
        var warnings: [String] = []
        let hex = sha.allSatisfy { $0.isHexDigit && ($0.isNumber || $0.isLowercase) }
        guard hex, sha.count == 40 || sha.count == 64 else {
            return (nil, ["git commit id \"\(sha.prefix(80))\" is not a commit id; commit metadata dropped"])
        }
        var commit = GitCommit(sha: sha, message: message, author: author, avatarURL: nil, time: nil)
        if message.count > maxMessage {
            commit.message = String(message.prefix(maxMessage))
            warnings.append("commit message cut to \(maxMessage) characters")
        }
        if author.count > maxAuthor {
            commit.author = String(author.prefix(maxAuthor))
            warnings.append("commit author cut to \(maxAuthor) characters")
        }
        if let avatarTemplate {
            let url = avatarTemplate.replacingOccurrences(of: "{email}", with: email)
            if url.count > maxAvatarURL {
                warnings.append("author avatar url longer than \(maxAvatarURL) characters dropped")
            } else {
                commit.avatarURL = url
            }
        }
        if let unix = Int64(seconds) {
            let millis = unix * 1000
            if Double(millis) > (now.timeIntervalSince1970 + 3600) * 1000 {
                warnings.append("commit time more than an hour in the future dropped")
            } else {
                commit.time = millis
            }
        } else {
            warnings.append("commit time \"\(seconds.prefix(40))\" is not a number; dropped")
        }
        return (commit, warnings)
    }

    /// The HEAD commit of the work tree holding `directory`, or nil when it is not in one (or git is missing).
    static func read(directory: URL, now: Date, avatarTemplate: String?) async -> (
        commit: GitCommit?, warnings: [String]
    ) {
        let separator = "\u{1F}"
        guard
            let result = try? await run(
                .name("git"),
                arguments: ["-C", directory.path, "log", "-1", "--format=%H%x1f%an%x1f%ae%x1f%ct%x1f%B"],
                output: .string(limit: 1 << 20), error: .discarded),
            result.terminationStatus.isSuccess
        else { return (nil, []) }
        let output = result.standardOutput
        let fields = output.components(separatedBy: separator)
        guard fields.count >= 5 else { return (nil, ["cannot read the git commit: unexpected output"]) }
        return sanitized(
            sha: fields[0],
            message: fields[4...].joined(separator: separator).trimmingCharacters(in: .whitespacesAndNewlines),
            author: fields[1], email: fields[2], committedAt: fields[3], now: now, avatarTemplate: avatarTemplate)
    }
}
