import ConvergeCore

extension ProvisionOutcome {
    /// The verdict of a call whose deployment has no time left (its `ProvisionJob.timeLimit` is zero or less): it is
    /// not made.
    static let timeLimitPassed = ProvisionOutcome.failed(
        "timed out: the deployment's time limit, counted from its first start, has passed")
}
