import ConvergeStore
import Foundation

/// What one `converge-bench` run measures and where it keeps its inputs, from `BENCH_*` variables and flags.
///
/// `BENCH_QUICK=1` is a smoke run: one run per row, the repository at 1k only, the end-to-end daemon at 1k and a
/// history database of 100k rows. Every other variable overrides the mode's default.
struct BenchSettings: Sendable {
    /// Measurements per row; rows report their median and min–max.
    var runs = 3
    /// Repository sizes (instances) of the manifest-load rows.
    var loadSizes = [1_000, 10_000, 40_000]
    /// Instances of the end-to-end daemon runs (and the converged database of the no-op resync and `/metrics`).
    var endToEndSize = 10_000
    /// The smaller repository of the change-to-PENDING row (the larger one is `endToEndSize`).
    var smallSize = 1_000
    /// Deployments of each dispatch run, and requests of each loopback HTTP run.
    var dispatchCount = 2_000
    /// Rows of the large history database; the small one has 10,000.
    var historyRows = 1_000_000
    /// Status changes timed to their `/v1/watch` event in each end-to-end run.
    var eventSamples = 100
    /// The PostgreSQL server of the PostgreSQL rows (`BENCH_POSTGRES_URL`, which `make bench` sets to a throwaway
    /// server of its own); nil: those rows say so.
    var postgres: BenchPostgres?
    var quick = false
    /// The scratch folder of generated inputs (git-ignored).
    var directory: URL
    /// The `converge` binary whose daemon is measured.
    var convergeBinary: URL
    /// Where the table is written as Markdown, with the machine's description; nil: stdout only.
    var output: URL?
    var webhookPort = 18_790
    var daemonPort = 18_787

    static func fromEnvironment(arguments: [String]) throws -> BenchSettings {
        let environment = ProcessInfo.processInfo.environment
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var settings = BenchSettings(
            directory: URL(fileURLWithPath: environment["BENCH_DIR"] ?? ".bench", isDirectory: true)
                .standardizedFileURL,
            convergeBinary: executable.deletingLastPathComponent().appendingPathComponent("converge"))
        if let quick = environment["BENCH_QUICK"], !quick.isEmpty, quick != "0" {
            settings.quick = true
            settings.runs = 1
            settings.loadSizes = [1_000]
            settings.endToEndSize = 1_000
            settings.dispatchCount = 500
            settings.historyRows = 100_000
            settings.eventSamples = 20
        }
        func integer(_ name: String) throws -> Int? {
            guard let text = environment[name], !text.isEmpty else { return nil }
            guard let value = Int(text.replacingOccurrences(of: "_", with: "")), value > 0 else {
                throw BenchError("\(name) must be a positive integer, got \"\(text)\"")
            }
            return value
        }
        settings.runs = try integer("BENCH_RUNS") ?? settings.runs
        settings.endToEndSize = try integer("BENCH_E2E_SIZE") ?? settings.endToEndSize
        settings.dispatchCount = try integer("BENCH_DISPATCH") ?? settings.dispatchCount
        settings.historyRows = try integer("BENCH_HISTORY_ROWS") ?? settings.historyRows
        settings.webhookPort = try integer("BENCH_WEBHOOK_PORT") ?? settings.webhookPort
        settings.daemonPort = try integer("BENCH_DAEMON_PORT") ?? settings.daemonPort
        settings.eventSamples = try integer("BENCH_EVENTS") ?? settings.eventSamples
        if let url = environment["BENCH_POSTGRES_URL"], !url.isEmpty {
            settings.postgres = BenchPostgres(url: try PostgresURL(url))
        }
        if let sizes = environment["BENCH_SIZES"], !sizes.isEmpty {
            settings.loadSizes = try sizes.split(separator: ",").map { text in
                guard let size = Int(text.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "_", with: "")),
                    size >= 40
                else { throw BenchError("BENCH_SIZES must be a comma-separated list of sizes ≥ 40, got \"\(sizes)\"") }
                return size
            }
        }
        var remaining = arguments.makeIterator()
        while let argument = remaining.next() {
            switch argument {
            case "--output":
                guard let path = remaining.next() else { throw BenchError("--output needs a path") }
                settings.output = URL(fileURLWithPath: path)
            case "--converge":
                guard let path = remaining.next() else { throw BenchError("--converge needs a path") }
                settings.convergeBinary = URL(fileURLWithPath: path).standardizedFileURL
            case "--help", "-h":
                print(Self.usage)
                exit(0)
            default:
                throw BenchError("unknown argument \"\(argument)\"\n\(Self.usage)")
            }
        }
        settings.endToEndSize = RepositoryGenerator.rounded(settings.endToEndSize)
        settings.smallSize = min(settings.smallSize, settings.endToEndSize)
        settings.loadSizes = settings.loadSizes.map(RepositoryGenerator.rounded)
        settings.dispatchCount = min(settings.dispatchCount, settings.endToEndSize)
        guard FileManager.default.isExecutableFile(atPath: settings.convergeBinary.path) else {
            throw BenchError("no converge binary at \(settings.convergeBinary.path); build it or pass --converge PATH")
        }
        return settings
    }

    static let usage = """
        usage: converge-bench [--output FILE] [--converge PATH]
          BENCH_RUNS (3), BENCH_SIZES (1000,10000,40000), BENCH_E2E_SIZE (10000), BENCH_DISPATCH (2000),
          BENCH_HISTORY_ROWS (1000000), BENCH_DIR (.bench), BENCH_QUICK=1 (a smoke run at 1k),
          BENCH_WEBHOOK_PORT (18790), BENCH_DAEMON_PORT (18787), BENCH_EVENTS (100 status changes per run),
          BENCH_POSTGRES_URL (postgres://USER@HOST:PORT/DB?sslmode=disable, a server the bench may create and drop
          databases on; `make bench` starts a throwaway one)
        """

    var webhookURL: String { "http://127.0.0.1:\(webhookPort)/deployments" }
    var daemonURL: String { "http://127.0.0.1:\(daemonPort)" }
}

/// A benchmark that could not run, with why.
struct BenchError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}

/// Prints a progress line to stderr, so that stdout carries only the table.
func progress(_ message: String) {
    FileHandle.standardError.write(Data("bench: \(message)\n".utf8))
}
