import ConvergeCore
import Foundation
import Testing

@testable import ConvergeManifests

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A directory of its own below the system's temporary directory, removed by `remove()`.
struct TemporaryDirectory {
    /// Its real path (no symbolic link on the way), so that tests can predict what errors say.
    let url: URL

    init() throws {
        let made = FileManager.default.temporaryDirectory.appendingPathComponent("converge-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: made, withIntermediateDirectories: true)
        url = made.resolvingSymlinksInPath()
    }

    func path(_ relative: String) -> String { url.appendingPathComponent(relative).path }

    func write(_ relative: String, _ text: String) throws {
        let file = url.appendingPathComponent(relative)
        try FileManager.default.createDirectory(
            at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: file, atomically: false, encoding: .utf8)
    }

    func link(_ relative: String, to destination: String) throws {
        try FileManager.default.createDirectory(
            at: url.appendingPathComponent(relative).deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: path(relative), withDestinationPath: destination)
    }

    func remove() {
        try? FileManager.default.removeItem(at: url)
    }
}

@Suite struct ManifestDirectoryTests {
    let project = "apiVersion: converge/v1\nkind: Project\nmetadata: {name: shop}\n"

    func errors(_ directory: URL) -> [String] {
        do {
            _ = try ManifestLoader().load(directory: directory)
            return []
        } catch {
            return error.diagnostics.map(\.description)
        }
    }

    @Test func load_refusesSymlinkLeavingRoot() throws {
        let root = try TemporaryDirectory()
        let outside = try TemporaryDirectory()
        defer {
            root.remove()
            outside.remove()
        }
        try root.write("project.yaml", project)
        try outside.write("other.yaml", "apiVersion: converge/v1\nkind: Project\nmetadata: {name: elsewhere}\n")
        try outside.write("nested/more.yaml", "not: [yaml")
        try root.link("secrets.yaml", to: "/etc/passwd")
        try root.link("envs/other.yaml", to: outside.path("other.yaml"))
        try root.link("shared", to: outside.path("nested"))
        try root.link("README", to: "/etc/passwd")
        #expect(
            errors(root.url) == [
                "envs/other.yaml:1:1: symbolic link leaves the manifests directory (it points to \(outside.path("other.yaml")))",
                "secrets.yaml:1:1: symbolic link leaves the manifests directory (it points to /etc/passwd)",
                "shared:1:1: symbolic link leaves the manifests directory (it points to \(outside.path("nested")))",
            ])
    }

    @Test func load_refusesRelativeSymlinkClimbingOutOfRoot() throws {
        let parent = try TemporaryDirectory()
        defer { parent.remove() }
        try parent.write("root/project.yaml", project)
        try parent.write("outside.yaml", "apiVersion: converge/v1\nkind: Project\nmetadata: {name: elsewhere}\n")
        try parent.link("root/sub/up.yaml", to: "../../outside.yaml")
        #expect(
            errors(parent.url.appendingPathComponent("root")) == [
                "sub/up.yaml:1:1: symbolic link leaves the manifests directory (it points to \(parent.path("outside.yaml")))"
            ])
    }

    @Test func load_followsLinksInsideRootOnceAndSurvivesLinkCycles() throws {
        let root = try TemporaryDirectory()
        defer { root.remove() }
        try root.write("real/project.yaml", project)
        try root.link("alias.yaml", to: "real/project.yaml")
        try root.link("real/again.yml", to: root.path("real/project.yaml"))
        try root.link("mirror", to: "real")
        try root.link("real/loop", to: "..")
        let state = try ManifestLoader().load(directory: root.url)
        #expect(state.projects.keys.sorted() == ["shop"])
        #expect(state.sources[ResourceKey(.project, "shop")]?.file == "real/project.yaml")
    }

    @Test func load_refusesFifoWithoutOpeningIt() throws {
        let root = try TemporaryDirectory()
        defer { root.remove() }
        try root.write("project.yaml", project)
        #expect(mkfifo(root.path("pipe.yaml"), 0o600) == 0)
        #expect(mkfifo(root.path("ignored-pipe"), 0o600) == 0)
        try root.link("linked.yaml", to: "pipe.yaml")
        // Opening the FIFO for reading would block this test forever: the refusal must come from its type alone.
        #expect(
            errors(root.url) == [
                "linked.yaml:1:1: not a regular file (it points to a fifo)",
                "pipe.yaml:1:1: not a regular file (it is a fifo)",
            ])
    }

    @Test func load_reportsBrokenLinkByName() throws {
        let root = try TemporaryDirectory()
        defer { root.remove() }
        try root.write("project.yaml", project)
        try root.link("gone.yaml", to: "missing.yaml")
        try root.link("gone-notes", to: "missing.txt")
        #expect(errors(root.url) == ["gone.yaml:1:1: symbolic link points to nothing (it points to missing.yaml)"])
    }

    @Test func unreadableFile_givesALocatedPlainMessage() throws {
        let file = ManifestDirectory.File(
            path: "envs/prod.yaml", absolutePath: "/nonexistent-\(UUID().uuidString)/prod.yaml",
            identity: FileIdentity(stat()))
        switch ManifestDirectory.contents(of: file, limit: 1 << 20) {
        case .success:
            Issue.record("a file that does not exist was read")
        case .failure(let diagnostic):
            #expect(diagnostic.description == "envs/prod.yaml:1:1: cannot read the file: no such file or directory")
        }
        #expect(ManifestDirectory.describe(EACCES) == "permission denied")
    }

    @Test(.enabled(if: geteuid() != 0, "root reads files whatever their mode"))
    func unreadableFile_inADirectoryLoad_isLocated() throws {
        let root = try TemporaryDirectory()
        defer { root.remove() }
        try root.write("project.yaml", project)
        try root.write("secret.yaml", project)
        #expect(chmod(root.path("secret.yaml"), 0) == 0)
        #expect(errors(root.url) == ["secret.yaml:1:1: cannot read the file: permission denied"])
    }

    @Test func missingDirectory_isLocatedAtItsPath() {
        #expect(
            errors(URL(fileURLWithPath: "/nonexistent-converge")) == ["/nonexistent-converge:1:1: no such directory"])
    }
}
