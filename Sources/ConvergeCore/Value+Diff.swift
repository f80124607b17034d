/// One leaf-level difference between two values: where, what it was, what it became (nil = absent).
public struct ValueChange: Equatable, Sendable, CustomStringConvertible {
    public var path: String
    public var before: Value?
    public var after: Value?

    public var description: String {
        "\(path): \(before?.canonicalJSON ?? "<absent>") -> \(after?.canonicalJSON ?? "<absent>")"
    }
}

extension Value {
    /// The leaf-level differences from `self` to `other`, sorted by path.
    ///
    /// Objects are compared member by member (paths `a.b`), arrays element by element (paths `a[0]`);
    /// anything else that differs is one change at its path.
    public func changes(to other: Value, at path: String = "") -> [ValueChange] {
        var changes: [ValueChange] = []
        Value.collect(from: self, to: other, at: path, into: &changes)
        return changes.sorted { $0.path < $1.path }
    }

    private static func collect(
        from before: Value?, to after: Value?, at path: String, into changes: inout [ValueChange]
    ) {
        switch (before, after) {
        case (.object(let old)?, .object(let new)?):
            for key in Set(old.keys).union(new.keys) {
                collect(from: old[key], to: new[key], at: path.isEmpty ? key : "\(path).\(key)", into: &changes)
            }
        case (.array(let old)?, .array(let new)?):
            for index in 0..<max(old.count, new.count) {
                collect(
                    from: index < old.count ? old[index] : nil, to: index < new.count ? new[index] : nil,
                    at: "\(path)[\(index)]", into: &changes)
            }
        default:
            if before != after {
                changes.append(ValueChange(path: path, before: before, after: after))
            }
        }
    }
}
