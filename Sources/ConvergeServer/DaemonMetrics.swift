import ConvergeEngine
import CoreMetrics
import Prometheus
import Synchronization

/// The daemon's metrics: a Prometheus registry holding every family of `MetricFamily.all` from the start, with its
/// help text, and the swift-metrics factory through which the engine records into it.
///
/// Each family is created when the daemon starts, with its known label sets (counters at zero), so that a scrape
/// shows `# HELP` and `# TYPE` for every family and alerts on `rate()` work before the first event.
public final class DaemonMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    /// The CPU time last exported, since a Prometheus counter only moves by increments.
    private let exportedCPUSeconds = Mutex<Double>(0)

    /// The registry with every family made, and `converge_build_info{version}` at 1.
    public init(version: String) {
        let factory = Factory(registry: registry)
        for family in MetricFamily.all {
            for labels in family.labelSets {
                switch family.kind {
                case .counter: _ = factory.makeCounter(label: family.name, dimensions: labels)
                case .gauge: _ = factory.makeRecorder(label: family.name, dimensions: labels, aggregate: false)
                case .histogram: _ = factory.makeTimer(label: family.name, dimensions: labels)
                }
            }
        }
        set(.buildInfo, labels: [("version", version)], to: 1)
    }

    /// The factory to bootstrap `MetricsSystem` with; every family it makes takes its help text from
    /// `MetricFamily.all`.
    public var factory: any MetricsFactory { Factory(registry: registry) }

    /// Sets the gauge of `family` (without labels, or with `labels`).
    func set(_ family: MetricFamily, labels: [(String, String)] = [], to value: Double) {
        registry.makeGauge(name: family.name, labels: labels, help: family.help).set(value)
    }

    /// Brings the process metrics up to date from `/proc`, where there is one.
    func recordProcess() {
        guard let sample = ProcessSample.current() else { return }
        exportedCPUSeconds.withLock { exported in
            registry.makeCounter(
                name: MetricFamily.processCPUSeconds.name, labels: [], help: MetricFamily.processCPUSeconds.help
            ).increment(by: max(0, sample.cpuSeconds - exported))
            exported = max(exported, sample.cpuSeconds)
        }
        set(.processResidentMemory, to: sample.residentMemoryBytes)
        set(.processVirtualMemory, to: sample.virtualMemoryBytes)
        set(.processOpenFDs, to: sample.openFDs)
        set(.processMaxFDs, to: sample.maxFDs)
        set(.processStartTime, to: sample.startTimeSeconds)
    }

    /// The families in the Prometheus text format.
    func text() -> [UInt8] {
        registry.emitToBuffer()
    }

    /// swift-prometheus's factory, with the help text of each family.
    private struct Factory: MetricsFactory {
        let registry: PrometheusCollectorRegistry
        var plain: PrometheusMetricsFactory { PrometheusMetricsFactory(registry: registry) }
        static let help = Dictionary(uniqueKeysWithValues: MetricFamily.all.map { ($0.name, $0.help) })
        func help(_ label: String) -> String { Self.help[label] ?? "" }

        func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
            registry.makeCounter(name: label, labels: dimensions, help: help(label))
        }

        func makeFloatingPointCounter(label: String, dimensions: [(String, String)])
            -> any FloatingPointCounterHandler
        {
            registry.makeCounter(name: label, labels: dimensions, help: help(label))
        }

        func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
            let help = self.help(label)
            guard aggregate else { return registry.makeGauge(name: label, labels: dimensions, help: help) }
            return registry.makeValueHistogram(
                name: label, labels: dimensions, buckets: plain.defaultValueHistogramBuckets, help: help)
        }

        func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
            registry.makeGauge(name: label, labels: dimensions, help: help(label))
        }

        func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
            registry.makeDurationHistogram(
                name: label, labels: dimensions, buckets: plain.defaultDurationHistogramBuckets,
                help: help(label))
        }

        func destroyCounter(_ handler: any CounterHandler) { plain.destroyCounter(handler) }
        func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
            plain.destroyFloatingPointCounter(handler)
        }
        func destroyRecorder(_ handler: any RecorderHandler) { plain.destroyRecorder(handler) }
        func destroyMeter(_ handler: any MeterHandler) { plain.destroyMeter(handler) }
        func destroyTimer(_ handler: any TimerHandler) { plain.destroyTimer(handler) }
    }
}
