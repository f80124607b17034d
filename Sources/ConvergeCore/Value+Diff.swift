/// One leaf-level difference between two values: where, what it was, what it became (nil = absent).
public struct ValueChange: Equatable, Sendable, CustomStringConvertible {
    public var path: String
    public var before: Value?
    public var after: Value?

    public init(path: String, before: Value?, after: Value?) {
        self.path = path
        self.before = before
        self.after = after
    }

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
                // Spelled out: a bare `nil` here would become `Value.null` through ExpressibleByNilLiteral.
                let before: Value? = index < old.count ? .some(old[index]) : .none
                let after: Value? = index < new.count ? .some(new[index]) : .none
                collect(from: before, to: after, at: "\(path)[\(index)]", into: &changes)
            }
        default:
            if before != after {
                changes.append(ValueChange(path: path, before: before, after: after))
            }
        }
    }
}
