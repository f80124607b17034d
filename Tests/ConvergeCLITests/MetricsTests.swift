import ConvergeCore
import ConvergeTestSupport
import Foundation
import Testing

/// Issue 13: `/metrics` had no `# HELP`, counters appeared only after their first event (so `rate()` alerts saw
/// nothing before the first failure), and there was no build info, no process metrics and no sign of a refused
/// manifest load.
@Suite(.serialized, .timeLimit(.minutes(3))) struct MetricsTests {
    /// A scrape of the Prometheus text format: each family's help and type, and each sample's value by its series
    /// (name and labels, as written).
    struct Scrape {
        var help: [String: String] = [:]
        var type: [String: String] = [:]
        var samples: [String: Double] = [:]

        init(_ text: String) {
            for line in text.split(separator: "\n").map(String.init) {
                let words = line.split(separator: " ", maxSplits: 3).map(String.init)
                if line.hasPrefix("# HELP "), words.count == 4 {
                    help[words[2]] = words[3]
                } else if line.hasPrefix("# TYPE "), words.count >= 4 {
                    type[words[2]] = words[3]
                } else if !line.hasPrefix("#"), let space = line.lastIndex(of: " ") {
                    samples[String(line[..<space])] = Double(line[line.index(after: space)...])
                }
            }
        }

        /// The family of a sample's series: its name, less a histogram's suffixes.
        func family(of series: String) -> String {
            let name = String(series.prefix { $0 != "{" })
            for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
                let base = String(name.dropLast(suffix.count))
                if type[base] == "histogram" { return base }
            }
            return name
        }

        func value(_ series: String) -> Double? { samples[series] }
    }

    func scrape(_ daemon: DaemonProcess) async throws -> Scrape {
        Scrape(try await daemon.getText("/metrics"))
    }

    @Test func everyFamilyDocumented_countersAtZeroBeforeAnyDeployment_buildInfoProcessAndRefusedLoad() async throws {
        let daemon = try DaemonProcess(files: repository(url: "http://127.0.0.1:9/deploy", instances: [:]))
        try await daemon.start()
        try await eventually("the daemon is ready") { await daemon.isReady() }
        let startedAt = Date()
        let metrics = try await scrape(daemon)

        // Every family has its help and type, and every sample belongs to a family so described.
        #expect(!metrics.samples.isEmpty)
        for series in metrics.samples.keys {
            let family = metrics.family(of: series)
            #expect(metrics.help[family]?.isEmpty == false, "no # HELP for \(family)")
            #expect(metrics.type[family] != nil, "no # TYPE for \(family)")
        }

        // The counters exist at zero before any deployment, for each label value they can take.
        #expect(try await daemon.store().deploymentCounts().values.allSatisfy { $0 == 0 })
        for series in [
            "converge_reconcile_errors_total", "converge_drift_plans_queued_total",
            #"converge_provisioner_errors_total{kind="timeout"}"#,
            #"converge_provisioner_errors_total{kind="connection"}"#,
            #"converge_provisioner_errors_total{kind="http"}"#,
            #"converge_provisioner_errors_total{kind="provisioner"}"#,
            #"converge_rollouts_ended_total{action="deploy",status="FAILED"}"#,
            #"converge_rollouts_ended_total{action="decommission",status="COMPLETED"}"#,
            #"converge_deployments_by_status{status="FAILED"}"#,
        ] {
            #expect(metrics.value(series) == 0, "\(series) is not at 0")
        }
        #expect(metrics.type["converge_provisioner_errors_total"] == "counter")
        #expect(metrics.value("converge_dispatch_duration_seconds_count") == 0)

        // Build info, with the version `converge version` reports.
        let version = try await ConvergeBinary.run("version").stdout
        let number = try #require(version.firstMatch(of: /\d+\.\d+\.\d+\S*/)).0
        #expect(metrics.value(#"converge_build_info{version="\#(number)"}"#) == 1, "\(metrics.samples.keys)")

        // Process metrics, as the standard process collector names them.
        #expect(try #require(metrics.value("process_resident_memory_bytes")) > 1_000_000)
        #expect(try #require(metrics.value("process_open_fds")) > 0)
        #expect(try #require(metrics.value("process_max_fds")) >= metrics.value("process_open_fds")!)
        #expect(try #require(metrics.value("process_cpu_seconds_total")) > 0)
        #expect(metrics.type["process_cpu_seconds_total"] == "counter")
        let start = try #require(metrics.value("process_start_time_seconds"))
        #expect(abs(start - startedAt.timeIntervalSince1970) < 60, "started at \(start), now \(startedAt)")

        // A refused load of the manifests: 1 while it is refused, 0 again once a load is good.
        #expect(metrics.value("converge_manifest_load_refused") == 0)
        let broken = daemon.manifests.appendingPathComponent("broken.yaml")
        try RefusedManifestStatusTests.broken.write(to: broken, atomically: true, encoding: .utf8)
        try await eventually("the gauge says the load is refused") {
            try await scrape(daemon).value("converge_manifest_load_refused") == 1
        }
        try FileManager.default.removeItem(at: broken)
        try await eventually("the gauge says the load is good again") {
            try await scrape(daemon).value("converge_manifest_load_refused") == 0
        }
        try await daemon.stop()
    }
}
