import ConvergeCore

/// Cursor paging, as both engines page: a limit from 1 to 1000, and cursors that are the decimal sequence of the last
/// item of a page.
enum Paging {
    static func checkLimit(_ limit: Int) throws {
        guard (1...1000).contains(limit) else {
            throw ConvergeError(.invalidArgument, "limit must be between 1 and 1000, got \(limit)")
        }
    }

    /// The sequence a cursor stands for; nil: `fallback`.
    static func sequence(of cursor: String?, default fallback: Int64) throws -> Int64 {
        guard let cursor else { return fallback }
        guard let sequence = Int64(cursor), sequence >= 0 else {
            throw ConvergeError(.invalidArgument, "invalid cursor \"\(cursor)\"")
        }
        return sequence
    }
}
