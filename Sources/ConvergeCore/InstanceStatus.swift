/// An instance's status as users see it (DESIGN §1).
public enum InstanceStatus: String, Sendable, CaseIterable, Codable {
    /// Never deployed.
    case initialized = "INITIALIZED"
    case provisioned = "PROVISIONED"
    case failed = "FAILED"
    case decommissioned = "DECOMMISSIONED"

    /// The status that follows a deployment ending with `status`, or nil when the instance status stays.
    ///
    /// A plan never moves instance status; an abort leaves it as it was.
    public static func after(_ action: Deployment.Action, endedWith status: Deployment.Status) -> InstanceStatus? {
        switch (action, status) {
        case (.plan, _): nil
        case (.provision, .completed): .provisioned
        case (.decommission, .completed): .decommissioned
        case (.provision, .failed), (.decommission, .failed): .failed
        default: nil
        }
    }
}
