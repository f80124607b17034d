import ConvergeCore
import ConvergeManifests
import Foundation

/// How a command prints what the API returned: a table (or a detail view) for people, `wide` with more columns,
/// `name` as `kind/id` lines for scripts (`converge approve $(converge get deployments -o name …)`), JSON or YAML.
public enum OutputFormat: String, CaseIterable, Sendable {
    case table
    case wide
    case name
    case json
    case yaml

    /// Whether the output is for people: a table, narrow or wide.
    public var isTable: Bool { self == .table || self == .wide }
}

/// The columns a list is shown with as a table, and what to print when the list is empty.
///
/// Headers are printed in upper case; columns are left-aligned and separated by at least two spaces; no line has
/// trailing spaces. A cell whose value is missing, null, an empty string or an empty list shows as `-`, so every
/// row has a word in every column (`awk '{print $2}'` keeps working). Widths count characters (grapheme
/// clusters), not terminal cells: East Asian wide characters make their row wider. Control characters in values
/// are escaped (`\n`, `\u{1B}`) so a value can neither break a row nor send escape sequences to the terminal.
public struct Table: Sendable {
    /// One column: its header and how to read its cell from a row.
    public struct Column: Sendable {
        /// The header as given; printed in upper case.
        public var header: String
        let cell: @Sendable (Value) -> String?

        /// A column showing the value at a dotted key path of each row (`"status"`, `"instance.name"`).
        ///
        /// Strings show as they are (RFC 3339 times included), numbers and booleans as JSON writes them, a list
        /// of scalars joined by commas, any other list or object as compact JSON.
        public init(_ header: String, path: String) {
            let keys = path.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            self.header = header
            self.cell = { row in
                var value: Value? = row
                for key in keys { value = value?[key] }
                return value.flatMap(Table.cellText)
            }
        }

        /// A column whose cell `cell` computes from each row; nil (or an empty string) shows as `-`.
        public init(_ header: String, cell: @escaping @Sendable (Value) -> String?) {
            self.header = header
            self.cell = cell
        }

        /// kubectl's AGE column: how long before the time of printing the RFC 3339 time at key `key` of each row was
        /// (`formattedAge`); `-` without one.
        public static func age(of key: String) -> Column {
            Column("age") { row in
                row[key]?.stringValue.flatMap(parseTime).map { formattedAge(Date().timeIntervalSince($0)) }
            }
        }

        /// An RFC 3339 time as the API writes it, with or without fractional seconds.
        static func parseTime(_ text: String) -> Date? {
            let formatter = ISO8601DateFormatter()
            if let date = formatter.date(from: text) { return date }
            formatter.formatOptions.insert(.withFractionalSeconds)
            return formatter.date(from: text)
        }
    }

    /// The columns, in the order they are printed.
    public var columns: [Column]
    /// The columns `-o wide` adds after `columns`.
    public var wideColumns: [Column]
    /// The line printed instead of a table when there are no rows, named by the caller: `no deployments`.
    public var emptyMessage: String
    /// The kind `-o name` prints before each row's id (`deployment` → `deployment/d01…`); nil: the row's own
    /// `kind`, lower-cased.
    public var kind: String?

    /// A table of `columns` (and `wideColumns` with `-o wide`) of rows of `kind`, printing `emptyMessage` for an
    /// empty list.
    public init(columns: [Column], wideColumns: [Column] = [], emptyMessage: String, kind: String? = nil) {
        self.columns = columns
        self.wideColumns = wideColumns
        self.emptyMessage = emptyMessage
        self.kind = kind
    }

    /// The table `-o wide` prints: every column, the wide ones last.
    var wide: Table {
        Table(columns: columns + wideColumns, emptyMessage: emptyMessage, kind: kind)
    }

    /// `-o name`: a `kind/id` line per row; nothing for no rows.
    func names(_ rows: [Value]) -> String {
        rows.map { row in
            let id = row["id"].flatMap(Table.cellText) ?? Table.missing
            guard let kind = kind ?? row["kind"]?.stringValue?.lowercased() else { return id + "\n" }
            return "\(kind)/\(id)\n"
        }.joined()
    }

    /// The mark shown for a missing or empty value.
    static let missing = "-"

    /// The rows as aligned lines, each ending with a newline; `emptyMessage` alone when there are none.
    func render(_ rows: [Value]) -> String {
        guard !rows.isEmpty else { return emptyMessage + "\n" }
        let lines: [[String]] =
            [columns.map { Table.escaped($0.header.uppercased()) }]
            + rows.map { row in
                columns.map { column in
                    guard let text = column.cell(row), !text.isEmpty else { return Table.missing }
                    return Table.escaped(text)
                }
            }
        var widths = [Int](repeating: 0, count: columns.count)
        for line in lines {
            for (index, cell) in line.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        var output = ""
        for line in lines {
            var text = ""
            for (index, cell) in line.enumerated() {
                text += cell
                if index < line.count - 1 {
                    text += String(repeating: " ", count: widths[index] - cell.count + 2)
                }
            }
            output += Table.trimmingTrailingSpaces(text) + "\n"
        }
        return output
    }

    /// `text` without the spaces that end its lines (a value's own trailing spaces included).
    static func trimmingTrailingSpaces(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false)
            .map { line in line.reversed().drop(while: { $0 == " " }).reversed() }
            .map { String($0) }
            .joined(separator: "\n")
    }

    /// A scalar's text as a cell or detail line shows it; nil for null and empty values.
    static func cellText(_ value: Value) -> String? {
        switch value {
        case .null: return nil
        case .bool(let bool): return bool ? "true" : "false"
        case .int(let int): return String(int)
        case .double: return value.canonicalJSON
        case .string(let string): return string.isEmpty ? nil : string
        case .array(let elements):
            guard !elements.isEmpty else { return nil }
            guard elements.allSatisfy(\.isScalar) else { return value.canonicalJSON }
            return elements.map { cellText($0) ?? missing }.joined(separator: ",")
        case .object(let members):
            return members.isEmpty ? nil : value.canonicalJSON
        }
    }

    /// `text` with control characters escaped, so that it stays on its line and cannot drive the terminal.
    static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var result = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where isControl(scalar): result += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }
}

/// A duration as kubectl prints an age (apimachinery's `HumanDuration`): seconds up to 2 minutes (`45s`), then minutes
/// and seconds up to 10 minutes (`7m5s`), minutes up to 3 hours (`12m`), hours and minutes up to 8 hours (`3h20m`),
/// hours up to 2 days (`30h`), days and hours up to 8 days (`2d5h`), days up to 2 years (`45d`), then years and days
/// up to 8 years (`3y20d`) and years; a zero remainder is left out (`3h`). Whole seconds count: a duration up to a
/// second below zero (clock skew) is `0s`, one further below `<invalid>`.
public func formattedAge(_ duration: TimeInterval) -> String {
    let whole = Int(duration.rounded(.towardZero))
    if whole < -1 { return "<invalid>" }
    let seconds = max(0, whole)
    func pair(_ major: Int, _ majorUnit: String, _ minor: Int, _ minorUnit: String) -> String {
        minor == 0 ? "\(major)\(majorUnit)" : "\(major)\(majorUnit)\(minor)\(minorUnit)"
    }
    let minutes = seconds / 60
    let hours = minutes / 60
    let days = hours / 24
    let years = days / 365
    switch seconds {
    case ..<(2 * 60): return "\(seconds)s"
    case ..<(10 * 60): return pair(minutes, "m", seconds % 60, "s")
    case ..<(3 * 3600): return "\(minutes)m"
    case ..<(8 * 3600): return pair(hours, "h", minutes % 60, "m")
    case ..<(48 * 3600): return "\(hours)h"
    case ..<(8 * 86400): return pair(days, "d", hours % 24, "h")
    case ..<(2 * 365 * 86400): return "\(days)d"
    case ..<(8 * 365 * 86400): return pair(years, "y", days % 365, "d")
    default: return "\(years)y"
    }
}

extension Value {
    /// Whether this is neither a list nor an object.
    fileprivate var isScalar: Bool {
        switch self {
        case .array, .object: false
        default: true
        }
    }
}

/// The text a command prints for `value`, ending with a newline.
///
/// `value` is what the API returned: one object, or a page `{"items": [...], "nextCursor": ...}`. JSON and YAML
/// print it whole (JSON indented by two spaces, keys sorted, so the same value always prints the same bytes).
/// `.table` prints the page's items (or the one object as a row) with `table`'s columns, `.wide` with its wide
/// columns too; without a table both print the detail view of `describe`: `key: value` lines, keys sorted and their
/// values aligned, nested objects indented by two spaces, lists of scalars joined by commas, other lists as `- `
/// items, missing values as `-`. `.name` prints a `kind/id` line per item (the bare id without a table).
public func render(_ value: Value, as format: OutputFormat, table: Table?) -> String {
    let rows: [Value] =
        if case .array(let items)? = value["items"] { items } else if case .array(let items) = value { items } else {
            [value]
        }
    switch format {
    case .json:
        return value.prettyJSON + "\n"
    case .yaml:
        return YAMLEmitter().emit(value)
    case .name:
        return (table ?? Table(columns: [], emptyMessage: "")).names(rows)
    case .table, .wide:
        guard let table else { return DetailView.render(value) }
        return (format == .wide ? table.wide : table).render(rows)
    }
}

/// The `describe` view: an object as indented `key: value` lines for people.
private enum DetailView {
    static func render(_ value: Value) -> String {
        var lines: [String] = []
        switch value {
        case .object(let members) where !members.isEmpty: append(members, indent: "", to: &lines)
        case .array(let elements) where !elements.isEmpty: append(elements, indent: "", to: &lines)
        default: lines.append(scalarLines(value, continuation: "").joined(separator: "\n"))
        }
        return Table.trimmingTrailingSpaces(lines.joined(separator: "\n")) + "\n"
    }

    /// Whether `value` is written on its key's line: scalars, empty collections and lists of scalars.
    static func isInline(_ value: Value) -> Bool {
        switch value {
        case .object(let members): members.isEmpty
        case .array(let elements): elements.allSatisfy(\.isScalar)
        default: true
        }
    }

    /// The text of an inline value, a multi-line string's later lines indented by `continuation`.
    static func scalarLines(_ value: Value, continuation: String) -> [String] {
        let text = Table.cellText(value) ?? Table.missing
        guard case .string = value, text.contains("\n") else { return [Table.escaped(text)] }
        var trimmed = Substring(text)
        while trimmed.hasSuffix("\n") { trimmed = trimmed.dropLast() }
        let parts = trimmed.split(separator: "\n", omittingEmptySubsequences: false).map { Table.escaped(String($0)) }
        return [parts[0]] + parts.dropFirst().map { continuation + $0 }
    }

    static func append(_ members: [String: Value], indent: String, to lines: inout [String]) {
        let sorted = members.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        let width = sorted.filter { isInline($0.value) }.map { Table.escaped($0.key).count }.max() ?? 0
        for (key, member) in sorted {
            let label = Table.escaped(key) + ":"
            guard isInline(member) else {
                lines.append(indent + label)
                if case .object(let nested) = member {
                    append(nested, indent: indent + "  ", to: &lines)
                } else if case .array(let elements) = member {
                    append(elements, indent: indent + "  ", to: &lines)
                }
                continue
            }
            let padding = String(repeating: " ", count: width - label.count + 2)
            let valueColumn = String(repeating: " ", count: indent.count + width + 2)
            lines.append(
                indent + label + padding + scalarLines(member, continuation: valueColumn).joined(separator: "\n"))
        }
    }

    /// A list that is not all scalars: one `- ` item each, an object's lines following its dash, a list's lines
    /// indented under a lone dash.
    static func append(_ elements: [Value], indent: String, to lines: inout [String]) {
        for element in elements {
            switch element {
            case .object(let members) where !members.isEmpty:
                var nested: [String] = []
                append(members, indent: indent + "  ", to: &nested)
                lines.append(indent + "- " + nested[0].dropFirst(indent.count + 2))
                lines.append(contentsOf: nested.dropFirst())
            case .array(let inner) where !inner.isEmpty:
                lines.append(indent + "-")
                append(inner, indent: indent + "  ", to: &lines)
            default:
                lines.append(indent + "- " + scalarLines(element, continuation: indent + "  ").joined(separator: "\n"))
            }
        }
    }
}
