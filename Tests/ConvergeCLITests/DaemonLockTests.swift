import ConvergeCore
import ConvergeTestSupport
import Foundation
import GRDB
import Testing

/// One daemon per SQLite file, however the file is named: the real binary, a second daemon given the database of a
/// running one through another name.
@Suite(.serialized) struct DaemonLockTests {
    /// Regression: a second daemon on a hard link of the database started (the lock was `<path>.lock`, and SQLite
    /// names its WAL after the path), corrupted the database and sent deployments twice; through a symlink it
    /// started too.
    @Test func secondDaemonThroughAHardLinkOrASymlink_refusesNamingTheHolder_andTheFirstKeepsWorking() async throws {
        let provisioner = try await RecordingProvisioner.start(delay: .fixed(.zero))
        defer { Task { await provisioner.stop() } }
        let daemon = try DaemonProcess(files: repository(url: provisioner.url, instances: ["a": ["size": 1]]))
        try await daemon.start()
        try await eventually("a is deployed") { try await status(daemon, count: 1) == .completed }
        let holder = try #require(daemon.pid)

        let hardLink = daemon.directory.appendingPathComponent("hard.sqlite").path
        try FileManager.default.linkItem(atPath: daemon.database, toPath: hardLink)
        let elsewhere = daemon.directory.appendingPathComponent("elsewhere")
        try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: true)
        let symlink = elsewhere.appendingPathComponent("soft.sqlite").path
        try FileManager.default.createSymbolicLink(atPath: symlink, withDestinationPath: daemon.database)
        for name in [hardLink, symlink] {
            let second = try await daemon.runSecondDaemon(database: name, timeout: .seconds(20))
            #expect(second.status != nil, "the second daemon on \(name) was still running after 20 s")
            #expect(second.status != 0)
            let expected =
                "the database \(name) is in use by another converge daemon (pid \(holder) on host "
                + "\(ProcessInfo.processInfo.hostName), since "
            #expect(second.stderr.contains(expected), "\(second.stderr)")
            // Refused before SQLite opened the file through the other name.
            #expect(!FileManager.default.fileExists(atPath: name + "-wal"))
        }

        #expect(daemon.isRunning)
        try daemon.write(repository(url: provisioner.url, instances: ["a": ["size": 2]]))
        #expect(try await daemon.sync() == 202)
        try await eventually("the edit is deployed") { try await status(daemon, count: 2) == .completed }
        let check = try await DatabaseQueue(path: daemon.database).read { db in
            try String.fetchAll(db, sql: "PRAGMA integrity_check")
        }
        #expect(check == ["ok"])
        #expect(try await daemon.stop() == 0)
    }

    /// The status of instance a's newest deployment once it has `count` deployments, nil before.
    private func status(_ daemon: DaemonProcess, count: Int) async throws -> Deployment.Status? {
        let deployments = try await daemon.store().history("p-dev-a")
        return deployments.count == count ? deployments.first?.status : nil
    }
}
