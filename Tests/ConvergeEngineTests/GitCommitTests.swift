import ConvergeCore
import Foundation
import Testing

@testable import ConvergeEngine

@Suite struct GitCommitTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let sha = String(repeating: "a1", count: 20)

    @Test func fieldsWithinBounds_areKept() {
        let (commit, warnings) = GitCommit.sanitized(
            sha: sha, message: "fix db", author: "Ada", email: "ada@example.com", committedAt: "1799999000", now: now,
            avatarTemplate: "https://avatars.example.com/{email}")
        #expect(warnings.isEmpty)
        #expect(
            commit?.value == [
                "sha": .string(sha), "message": "fix db", "author": "Ada",
                "authorAvatarURL": "https://avatars.example.com/ada@example.com", "time": 1_799_999_000_000,
            ])
    }

    @Test func oversizedOrInvalidFields_areCutOrDroppedWithAWarning() {
        let (commit, warnings) = GitCommit.sanitized(
            sha: sha, message: String(repeating: "m", count: 20_000), author: String(repeating: "a", count: 300),
            email: String(repeating: "e", count: 600), committedAt: String(1_800_000_000 + 7200), now: now,
            avatarTemplate: "https://a/{email}")
        #expect(commit?.message.count == 10_240)
        #expect(commit?.author.count == 256)
        #expect(commit?.avatarURL == nil)
        #expect(commit?.time == nil)
        #expect(
            warnings == [
                "commit message cut to 10240 characters", "commit author cut to 256 characters",
                "author avatar url longer than 512 characters dropped",
                "commit time more than an hour in the future dropped",
            ])
        let (none, problems) = GitCommit.sanitized(
            sha: "not-a-sha", message: "", author: "", email: "", committedAt: "1", now: now, avatarTemplate: nil)
        #expect(none == nil)
        #expect(problems == [#"git commit id "not-a-sha" is not a commit id; commit metadata dropped"#])
    }
}

@Suite struct CallbackTokenTests {
    @Test func tokens_areBoundToDeploymentAndAttempt() {
        let tokens = CallbackToken(key: Array(repeating: 7, count: 32))
        let token = tokens.token(deploymentID: "d1", attempt: 1)
        #expect(token.count == 64)
        #expect(tokens.isValid(token, deploymentID: "d1", attempt: 1))
        #expect(!tokens.isValid(token, deploymentID: "d2", attempt: 1))
        #expect(!tokens.isValid(token, deploymentID: "d1", attempt: 2))
        #expect(!tokens.isValid("zz" + token.dropFirst(2), deploymentID: "d1", attempt: 1))
        #expect(!CallbackToken(key: Array(repeating: 8, count: 32)).isValid(token, deploymentID: "d1", attempt: 1))
    }
}
