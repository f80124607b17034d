import ConvergeClient
import ConvergeCore
import Foundation
import Testing

@Suite struct OutputTests {
    static let deployments = Table(
        columns: [
            Table.Column("name", path: "name"),
            Table.Column("status", path: "status"),
            Table.Column("version", path: "spec.version"),
            Table.Column("started", path: "startedAt"),
            Table.Column("endpoint") { row in
                guard let host = row["host"]?.stringValue, case .int(let port)? = row["port"] else { return nil }
                return "\(host):\(port)"
            },
        ],
        emptyMessage: "no deployments")

    static let page: Value = [
        "items": [
            [
                "name": "web", "status": "running", "spec": ["version": 3], "startedAt": "2024-05-01T12:00:00Z",
                "host": "web.internal", "port": 8080,
            ],
            ["name": "a-very-long-instance-name", "status": "failed", "startedAt": nil],
            ["name": "db", "status": "", "spec": ["version": 1.5], "host": "db"],
        ],
        "nextCursor": "c2",
    ]

    @Test func table_alignsColumnsToTheWidestValueAndShowsMissingValuesAsDash() {
        #expect(
            render(Self.page, as: .table, table: Self.deployments) == """
                NAME                       STATUS   VERSION  STARTED               ENDPOINT
                web                        running  3        2024-05-01T12:00:00Z  web.internal:8080
                a-very-long-instance-name  failed   -        -                     -
                db                         -        1.5      -                     -

                """)
    }

    @Test func table_ofAnEmptyListPrintsTheCallersMessage() {
        #expect(render(["items": [], "nextCursor": nil], as: .table, table: Self.deployments) == "no deployments\n")
        #expect(render([], as: .table, table: Self.deployments) == "no deployments\n")
    }

    @Test func table_ofOneObjectIsOneRow() {
        let table = Table(
            columns: [Table.Column("ID", path: "id"), Table.Column("Tags", path: "tags")], emptyMessage: "")
        #expect(render(["id": "d-1", "tags": ["a", "b", 3]], as: .table, table: table) == "ID   TAGS\nd-1  a,b,3\n")
    }

    @Test func table_neverEndsALineWithSpacesNorLetsAValueBreakIt() {
        let table = Table(
            columns: [Table.Column("value", path: "value"), Table.Column("last", path: "last")], emptyMessage: "")
        let rows: Value = [
            ["value": "two\nlines", "last": "trailing  "],
            ["value": "\u{1B}[31mred", "last": ["nested": true]],
        ]
        #expect(
            render(rows, as: .table, table: table) == """
                VALUE          LAST
                two\\nlines     trailing
                \\u{1B}[31mred  {"nested":true}

                """)
    }

    @Test func json_isIndentedWithSortedKeysAndTheWholePage() {
        let expected = """
            {
              "items": [
                {
                  "id": "d-1",
                  "status": "running"
                }
              ],
              "nextCursor": null
            }

            """
        #expect(
            render(["nextCursor": nil, "items": [["status": "running", "id": "d-1"]]], as: .json, table: nil)
                == expected)
        #expect(
            render(
                ["items": [["id": "d-1", "status": "running"]], "nextCursor": nil], as: .json, table: Self.deployments)
                == expected)
    }

    @Test func json_isTheSameBytesForTheSameValue() {
        var members: [String: Value] = [:]
        for index in 0..<50 { members["key\(index)"] = .int(index) }
        var reversed: [String: Value] = [:]
        for index in (0..<50).reversed() { reversed["key\(index)"] = .int(index) }
        #expect(render(.object(members), as: .json, table: nil) == render(.object(reversed), as: .json, table: nil))
    }

    @Test func yaml_isTheEmittersDocument() {
        #expect(
            render(["items": [["id": "d-1", "ready": "true"]], "nextCursor": nil], as: .yaml, table: Self.deployments)
                == """
                items:
                - id: d-1
                  ready: 'true'
                nextCursor: null

                """)
    }

    @Test func describe_showsKeyValueLinesWithNestedObjectsIndented() {
        let deployment: Value = [
            "id": "d-1", "instance": "web", "status": "running", "error": nil, "labels": [:],
            "createdAt": "2024-05-01T12:00:00Z",
            "params": ["cpu": 2, "memory": "512Mi", "tags": ["a", "b"]],
            "conditions": [["type": "Ready", "status": true], ["type": "Healthy", "message": "line1\nline2"]],
        ]
        #expect(
            render(deployment, as: .table, table: nil) == """
                conditions:
                  - status: true
                    type:   Ready
                  - message: line1
                             line2
                    type:    Healthy
                createdAt: 2024-05-01T12:00:00Z
                error:     -
                id:        d-1
                instance:  web
                labels:    -
                params:
                  cpu:    2
                  memory: 512Mi
                  tags:   a,b
                status:    running

                """)
    }

    @Test func outputFormat_namesTheFormats() {
        #expect(OutputFormat.allCases.map(\.rawValue) == ["table", "wide", "name", "json", "yaml"])
        #expect(OutputFormat(rawValue: "yaml") == .yaml)
    }
}

/// kubectl's AGE format, its table taken from apimachinery's `HumanDuration` tests.
@Suite struct FormattedAgeTests {
    @Test(
        arguments: [
            (-2.0, "<invalid>"), (-1.5, "0s"), (-0.5, "0s"), (0, "0s"), (1.9, "1s"), (45, "45s"), (119, "119s"),
            (120, "2m"), (121, "2m1s"), (9 * 60 + 59, "9m59s"), (10 * 60, "10m"), (10 * 60 + 30, "10m"),
            (3 * 3600 - 1, "179m"), (3 * 3600, "3h"), (3 * 3600 + 20 * 60, "3h20m"), (8 * 3600, "8h"),
            (30 * 3600, "30h"),
            (48 * 3600 - 1, "47h"), (48 * 3600, "2d"), (53 * 3600, "2d5h"), (8 * 86400, "8d"), (45 * 86400, "45d"),
            (2 * 365 * 86400 - 1, "729d"), (2 * 365 * 86400, "2y"), (3 * 365 * 86400 + 20 * 86400, "3y20d"),
            (8 * 365 * 86400, "8y"), (10 * 365 * 86400 + 100 * 86400, "10y"),
        ] as [(Double, String)])
    func formatsLikeKubectl(seconds: Double, age: String) {
        #expect(formattedAge(seconds) == age)
    }

    @Test func ageColumn_showsTheAgeOfTheTimeAtItsKey_orADash() {
        let table = Table(columns: [.init("id", path: "id"), .age(of: "createdAt")], emptyMessage: "none")
        let hourAgo = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-3 * 3600 - 30))
        let rows: Value = ["items": [["id": "a", "createdAt": .string(hourAgo)], ["id": "b"]]]
        #expect(render(rows, as: .table, table: table) == "ID  AGE\na   3h\nb   -\n")
    }
}
