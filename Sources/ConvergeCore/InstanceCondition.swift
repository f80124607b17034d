import Foundation

/// A Kubernetes-style condition of an instance: a type, whether it holds, why, and since when (DESIGN §4).
public struct InstanceCondition: Equatable, Sendable, Codable {
    /// The conditions an instance can carry.
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case ready = "Ready"
        case progressing = "Progressing"
        case blocked = "Blocked"
        case failed = "Failed"
        case orphaned = "Orphaned"
    }

    public var type: Kind
    public var status: Bool
    public var reason: String
    public var message: String
    /// When `status` last changed; kept when only the reason or message change.
    public var lastTransitionTime: Date

    public init(type: Kind, status: Bool, reason: String, message: String, lastTransitionTime: Date) {
        self.type = type
        self.status = status
        self.reason = reason
        self.message = message
        self.lastTransitionTime = lastTransitionTime
    }

    /// `new` conditions with the transition times of `old` kept wherever the status did not change.
    public static func merge(old: [InstanceCondition], new: [InstanceCondition]) -> [InstanceCondition] {
        new.map { condition in
            guard let previous = old.first(where: { $0.type == condition.type }), previous.status == condition.status
            else { return condition }
            var kept = condition
            kept.lastTransitionTime = previous.lastTransitionTime
            return kept
        }
    }
}
