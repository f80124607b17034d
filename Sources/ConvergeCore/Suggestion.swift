/// The candidate a misspelt or cut-short name most likely meant, for a "did you mean": the closest candidate
/// within a few edits (one per three characters of it, at least one, at most three; a swap of two neighbouring
/// characters is one edit), else the first one that starts with the (at least four-character) text; nil when none
/// is close. Case is ignored.
///
/// Only candidates whose length is within three characters of the text's are scored (no other could be close
/// enough), so a megabyte of text costs one pass over it, not a megabyte-by-name table of edits. The one suggestion
/// function of converge: manifests, API paths and the command line all use it.
public func suggestion(for text: String, among candidates: [String]) -> String? {
    let longest = candidates.map(\.count).max() ?? 0
    guard text.utf8.count <= 4 * (longest + 3) else { return nil }
    let length = text.count
    let lowered = text.lowercased()
    let scored = candidates.filter { abs($0.count - length) <= 3 }.map { ($0, editDistance(lowered, $0.lowercased())) }
    if let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= max(1, min(3, best.0.count / 3)) {
        return best.0
    }
    if length >= 4 {
        return candidates.sorted().first { $0.lowercased().hasPrefix(lowered) }
    }
    return nil
}

/// `; did you mean "policy"?` for the `suggestion` among `candidates`, to end an error message with; else empty.
public func didYouMean(_ text: String, among candidates: [String]) -> String {
    suggestion(for: text, among: candidates).map { "; did you mean \"\($0)\"?" } ?? ""
}

/// The edit distance between two strings, counting an insertion, a deletion, a substitution and a swap of two
/// neighbouring characters as one edit each (Damerau–Levenshtein, optimal string alignment).
public func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a)
    let b = Array(b)
    guard !a.isEmpty, !b.isEmpty else { return a.count + b.count }
    // Rows i-2, i-1 and i of the table of distances between prefixes of a and b.
    var beforePrevious = [Int](repeating: 0, count: b.count + 1)
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + [Int](repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                current[j] = min(current[j], beforePrevious[j - 2] + 1)
            }
        }
        beforePrevious = previous
        previous = current
    }
    return previous[b.count]
}
