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
        /// The newest drift check (a PLAN of the recorded configuration) reported changes, and no provision or
        /// decommission completed since.
        case drifted = "Drifted"
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

extension InstanceCondition {
    /// The condition as the store records it (the shape its `Codable` form has always had: the transition time in
    /// seconds since 2001-01-01).
    public var value: Value {
        [
            "type": .string(type.rawValue), "status": .bool(status), "reason": .string(reason),
            "message": .string(message),
            "lastTransitionTime": Value.number(lastTransitionTime.timeIntervalSinceReferenceDate) ?? 0,
        ]
    }

    /// A condition from its recorded value; nil when the value is not one.
    public init?(value: Value) {
        guard let type = value["type"]?.stringValue.flatMap(Kind.init(rawValue:)),
            case .bool(let status)? = value["status"], let reason = value["reason"]?.stringValue,
            let message = value["message"]?.stringValue
        else { return nil }
        let seconds: Double
        switch value["lastTransitionTime"] {
        case .int(let int)?: seconds = Double(int)
        case .double(let double)?: seconds = double
        default: return nil
        }
        self.init(
            type: type, status: status, reason: reason, message: message,
            lastTransitionTime: Date(timeIntervalSinceReferenceDate: seconds))
    }
}
