import ConvergeCore

/// A metric family of the daemon's `/metrics`: its name, type and help text, and the label sets it is created with
/// when the daemon starts (a counter at zero for each label value it can take, so that `rate()` and `increase()`
/// work before its first event). `all` is the one list of them: the exporter takes each family's help text from it,
/// and the README's table of metrics follows it.
public struct MetricFamily: Sendable {
    public enum Kind: String, Sendable {
        case counter, gauge, histogram
    }

    public let name: String
    public let kind: Kind
    public let help: String
    /// The label sets created at start; `[[]]` for a family without labels, empty for one made when first used.
    public let labelSets: [[(String, String)]]

    init(_ name: String, _ kind: Kind, _ help: String, labelSets: [[(String, String)]] = [[]]) {
        self.name = name
        self.kind = kind
        self.help = help
        self.labelSets = labelSets
    }

    static let reconciles = MetricFamily(
        "converge_reconciles_total", .counter, "Reconciles of an instance started by the reconciler's workers.")
    static let reconcileErrors = MetricFamily(
        "converge_reconcile_errors_total", .counter, "Reconciles that failed and were retried with backoff.")
    static let dispatchDuration = MetricFamily(
        "converge_dispatch_duration_seconds", .histogram,
        "Time from a deployment's dispatch to the provisioner's answer (or the end of its call), in seconds.")
    static let provisionerErrors = MetricFamily(
        "converge_provisioner_errors_total", .counter, "Deployments a provisioner failed, by kind of error.",
        labelSets: ProvisionerErrorKind.allCases.map { [("kind", $0.rawValue)] })
    static let rolloutsEnded = MetricFamily(
        "converge_rollouts_ended_total", .counter, "Rollouts that ended, by action and terminal status.",
        labelSets: Rollout.Action.allCases.flatMap { action in
            Rollout.Status.allCases.filter(\.isTerminal).map { [("action", action.rawValue), ("status", $0.rawValue)] }
        })
    static let driftPlansQueued = MetricFamily(
        "converge_drift_plans_queued_total", .counter, "Plans queued by drift checks.")
    static let instancesDrifted = MetricFamily(
        "converge_instances_drifted", .gauge, "Instances whose Drifted condition holds.")
    public static let deploymentsByStatus = MetricFamily(
        "converge_deployments_by_status", .gauge, "Deployments in the store, by status.",
        labelSets: Deployment.Status.allCases.map { [("status", $0.rawValue)] })
    public static let workqueueDepth = MetricFamily(
        "converge_workqueue_depth", .gauge, "Instances waiting in the reconciler's work queue.")
    public static let manifestLoadRefused = MetricFamily(
        "converge_manifest_load_refused", .gauge,
        "1 while the latest load of the manifests was refused (the last good load stays in force), else 0.")
    public static let buildInfo = MetricFamily(
        "converge_build_info", .gauge, "Always 1; its version label is the version of the daemon's build.",
        labelSets: [])
    public static let processCPUSeconds = MetricFamily(
        "process_cpu_seconds_total", .counter, "User and system CPU time the daemon spent, in seconds.")
    public static let processResidentMemory = MetricFamily(
        "process_resident_memory_bytes", .gauge, "Resident memory size of the daemon, in bytes.")
    public static let processVirtualMemory = MetricFamily(
        "process_virtual_memory_bytes", .gauge, "Virtual memory size of the daemon, in bytes.")
    public static let processOpenFDs = MetricFamily(
        "process_open_fds", .gauge, "Open file descriptors of the daemon.")
    public static let processMaxFDs = MetricFamily(
        "process_max_fds", .gauge, "The daemon's limit on open file descriptors.")
    public static let processStartTime = MetricFamily(
        "process_start_time_seconds", .gauge, "When the daemon started, in seconds since the Unix epoch.")

    /// Every family the daemon exports.
    public static let all: [MetricFamily] = [
        reconciles, reconcileErrors, dispatchDuration, provisionerErrors, rolloutsEnded, driftPlansQueued,
        instancesDrifted, deploymentsByStatus, workqueueDepth, manifestLoadRefused, buildInfo, processCPUSeconds,
        processResidentMemory, processVirtualMemory, processOpenFDs, processMaxFDs, processStartTime,
    ]
}

/// A coarse kind of provisioner error, the label of `converge_provisioner_errors_total`.
enum ProvisionerErrorKind: String, CaseIterable {
    case timeout, connection, http, provisioner

    init(error: String) {
        if error.contains("timed out") || error.contains("no response within") {
            self = .timeout
        } else if error.hasPrefix("connection failed") {
            self = .connection
        } else if error.hasPrefix("the provisioner answered") {
            self = .http
        } else {
            self = .provisioner
        }
    }
}
