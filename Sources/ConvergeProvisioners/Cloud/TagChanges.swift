import ConvergeCore

/// What converging an object's tags to the params' takes: the tags to set (new or with another value) and the keys to
/// remove. Empty when the tags already match, so an unchanged object gets no tagging call.
struct TagChanges: Equatable {
    var updated: [String: String] = [:]
    /// Sorted.
    var removed: [String] = []

    init(from current: [String: String], to desired: [String: String]) {
        for key in Set(current.keys).union(desired.keys).sorted() {
            let before = current[key]
            let after = desired[key]
            guard before != after else { continue }
            if let after { updated[key] = after } else { removed.append(key) }
        }
    }

    var isEmpty: Bool { updated.isEmpty && removed.isEmpty }

    /// Tags as a params-like object, for a plan's state.
    static func value(_ tags: [String: String]) -> Value {
        .object(tags.mapValues { .string($0) })
    }
}
