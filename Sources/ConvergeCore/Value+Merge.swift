extension Value {
    /// Deep merge of `overlay` onto this value: objects merge member by member, lists and scalars replace,
    /// and an explicit `null` in the overlay deletes the member.
    public func merged(with overlay: Value) -> Value {
        guard case .object(var base) = self, case .object(let changes) = overlay else {
            return overlay
        }
        for (key, change) in changes {
            if change == .null {
                base.removeValue(forKey: key)
            } else if let existing = base[key] {
                base[key] = existing.merged(with: change)
            } else {
                base[key] = change.removingNulls()
            }
        }
        return .object(base)
    }

    /// This value with every `null` object member removed, recursively; what a merge onto nothing yields.
    private func removingNulls() -> Value {
        switch self {
        case .object(let members):
            return .object(members.filter { $0.value != .null }.mapValues { $0.removingNulls() })
        default:
            return self
        }
    }
}
