import ConvergeClient
import ConvergeCore
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
