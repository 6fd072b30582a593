"""Renders a Helm chart's templates without helm: the subset of Go templates
and Helm functions that deploy/helm/muserve uses, and nothing more.

Anything outside that subset (an unknown function, keyword or expression)
raises TemplateError naming the template, so a chart change that this
renderer cannot follow fails the test instead of passing unchecked.

Supported: {{ }} actions with {{- -}} trimming, {{/* comments */}}, fields
(.Values.a.b, .Release.Name, .Chart.AppVersion, $.x, . inside with/range),
string and integer literals, pipelines, parentheses, if/else, with/else,
range over lists and maps, define and include, and the functions toYaml,
nindent, indent, quote, default, not, trunc, trimSuffix and .Files.Get.
"""
import os
import re

import yaml


class TemplateError(Exception):
    pass


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)


def _tokenize(text, name):
    """Splits a template into ('text', str) and ('action', str) items, applying
    the trim markers to the neighbouring text as Go does."""
    items = []
    pos = 0
    trim_next = False
    for match in _ACTION.finditer(text):
        chunk = text[pos:match.start()]
        if trim_next:
            chunk = chunk.lstrip()
        if match.group(1):
            chunk = chunk.rstrip()
        items.append(("text", chunk))
        body = match.group(2).strip()
        if not body.startswith("/*"):
            items.append(("action", body))
        elif not body.endswith("*/"):
            raise TemplateError(f"{name}: unterminated comment")
        trim_next = bool(match.group(3))
        pos = match.end()
    chunk = text[pos:]
    items.append(("text", chunk.lstrip() if trim_next else chunk))
    if "{{" in "".join(t for kind, t in items if kind == "text"):
        raise TemplateError(f"{name}: an action the renderer cannot parse")
    return items


def _parse(items, name, pos=0, stop=("end",)):
    """Returns (nodes, index of the stopping keyword item, keyword)."""
    nodes = []
    while pos < len(items):
        kind, body = items[pos]
        if kind == "text":
            nodes.append(("text", body))
            pos += 1
            continue
        word = body.split(None, 1)[0]
        rest = body[len(word):].strip()
        if word in ("end", "else"):
            if word not in stop:
                raise TemplateError(f"{name}: unexpected {{{{ {body} }}}}")
            if word == "else" and rest:
                raise TemplateError(f"{name}: 'else {rest}' is not supported")
            return nodes, pos, word
        if word in ("if", "with", "range"):
            then, pos, kw = _parse(items, name, pos + 1, ("end", "else"))
            other = []
            if kw == "else":
                other, pos, kw = _parse(items, name, pos + 1, ("end",))
            if kw is None:
                raise TemplateError(f"{name}: {{{{ {body} }}}} has no {{{{ end }}}}")
            nodes.append((word, rest, then, other))
            pos += 1
        elif word == "define":
            body_nodes, pos, kw = _parse(items, name, pos + 1, ("end",))
            if kw is None:
                raise TemplateError(f"{name}: {{{{ {body} }}}} has no {{{{ end }}}}")
            nodes.append(("define", _string_literal(rest, name), body_nodes))
            pos += 1
        elif word in ("template", "block", "break", "continue") or ":=" in body or "=" == word:
            raise TemplateError(f"{name}: '{word}' is not supported by this renderer")
        else:
            nodes.append(("action", body))
            pos += 1
    return nodes, pos, None


def _string_literal(text, name):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    raise TemplateError(f"{name}: expected a string literal, got {text!r}")


_TOKEN = re.compile(r'\s*(\(|\)|\||"(?:[^"\\]|\\.)*"|-?\d+|[$.A-Za-z_][\w.$]*)')


def _lex_pipeline(text, name):
    tokens = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise TemplateError(f"{name}: cannot parse {text[pos:]!r}")
        tokens.append(match.group(1))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return tokens


def _truthy(value):
    return value not in (None, False, 0, "") and not (isinstance(value, (list, dict)) and not value)


def _to_yaml(value):
    if value is None:
        return "null"
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=True).rstrip("\n")


class Chart:
    """A chart directory: Chart.yaml, values.yaml, templates/ and files."""

    def __init__(self, chart_dir, release_name="muserve", namespace="default"):
        self.dir = chart_dir
        with open(os.path.join(chart_dir, "Chart.yaml")) as f:
            self.chart = yaml.safe_load(f)
        with open(os.path.join(chart_dir, "values.yaml")) as f:
            self.default_values = yaml.safe_load(f) or {}
        self.release = {"Name": release_name, "Namespace": namespace, "Service": "Helm"}
        self.defines = {}
        self.templates = {}
        template_dir = os.path.join(chart_dir, "templates")
        for file_name in sorted(os.listdir(template_dir)):
            path = os.path.join(template_dir, file_name)
            if file_name == "NOTES.txt" or not os.path.isfile(path):
                continue
            with open(path) as f:
                items = _tokenize(f.read(), file_name)
            nodes, pos, kw = _parse(items, file_name)
            if kw is not None:
                raise TemplateError(f"{file_name}: unbalanced {{{{ {kw} }}}}")
            self._collect_defines(nodes)
            if not file_name.startswith("_"):
                self.templates[file_name] = nodes

    def _collect_defines(self, nodes):
        for node in nodes:
            if node[0] == "define":
                self.defines[node[1]] = node[2]

    def render(self, override_values=None):
        """Returns {template file name: rendered text} with values merged as
        `helm template -f override.yaml` would."""
        values = _merge(self.default_values, override_values or {})
        chart = {"Name": self.chart["name"], "Version": self.chart["version"],
                 "AppVersion": self.chart.get("appVersion", "")}
        root = {"Values": values, "Release": self.release, "Chart": chart}
        return {name: self._render_nodes(nodes, root, root, name)
                for name, nodes in self.templates.items()}

    def render_documents(self, override_values=None):
        """Every rendered YAML document (parsed), with its template's name."""
        documents = []
        for name, text in self.render(override_values).items():
            for doc in yaml.safe_load_all(text):
                if doc is not None:
                    documents.append((name, doc))
        return documents

    # ---- evaluation ----

    def _render_nodes(self, nodes, dot, root, name):
        out = []
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "define":
                continue
            elif kind == "action":
                value = self._pipeline(node[1], dot, root, name)
                out.append("" if value is None else _format(value))
            elif kind == "if":
                value = self._pipeline(node[1], dot, root, name)
                branch = node[2] if _truthy(value) else node[3]
                out.append(self._render_nodes(branch, dot, root, name))
            elif kind == "with":
                value = self._pipeline(node[1], dot, root, name)
                if _truthy(value):
                    out.append(self._render_nodes(node[2], value, root, name))
                else:
                    out.append(self._render_nodes(node[3], dot, root, name))
            elif kind == "range":
                value = self._pipeline(node[1], dot, root, name)
                elements = ([value[k] for k in sorted(value)] if isinstance(value, dict)
                            else list(value or []))
                if not elements:
                    out.append(self._render_nodes(node[3], dot, root, name))
                for element in elements:
                    out.append(self._render_nodes(node[2], element, root, name))
        return "".join(out)

    def _pipeline(self, text, dot, root, name):
        tokens = _lex_pipeline(text, name)
        value, pos = self._eval_pipeline(tokens, 0, dot, root, name)
        if pos != len(tokens):
            raise TemplateError(f"{name}: trailing {tokens[pos:]} in {{{{ {text} }}}}")
        return value

    def _eval_pipeline(self, tokens, pos, dot, root, name):
        value, pos, has_value = None, pos, False
        while True:
            args, pos = self._command_args(tokens, pos, dot, root, name)
            if has_value:
                args.append(("value", value))
            value = self._call(args, dot, root, name)
            has_value = True
            if pos < len(tokens) and tokens[pos] == "|":
                pos += 1
                continue
            return value, pos

    def _command_args(self, tokens, pos, dot, root, name):
        args = []
        while pos < len(tokens) and tokens[pos] not in ("|", ")"):
            token = tokens[pos]
            if token == "(":
                value, pos = self._eval_pipeline(tokens, pos + 1, dot, root, name)
                if pos >= len(tokens) or tokens[pos] != ")":
                    raise TemplateError(f"{name}: unbalanced parenthesis")
                args.append(("value", value))
            elif token.startswith('"'):
                args.append(("value", bytes(token[1:-1], "utf-8").decode("unicode_escape")))
            elif re.fullmatch(r"-?\d+", token):
                args.append(("value", int(token)))
            elif token in ("true", "false"):
                args.append(("value", token == "true"))
            elif token.startswith(".") or token.startswith("$"):
                args.append(("field", token))
            else:
                args.append(("func", token))
            pos += 1
        if not args:
            raise TemplateError(f"{name}: empty command")
        return args, pos

    def _field(self, path, dot, root, name):
        if path == ".":
            return dot
        if path.startswith("$"):
            if path != "$" and not path.startswith("$."):
                raise TemplateError(f"{name}: variables ({path}) are not supported")
            base, path = root, path[1:]
            if not path:
                return root
        else:
            base = dot
        value = base
        for part in path.strip(".").split("."):
            if not isinstance(value, dict):
                raise TemplateError(f"{name}: {path}: .{part} of a non-map")
            value = value.get(part)
        return value

    def _call(self, args, dot, root, name):
        kind, head = args[0]
        rest = [self._arg(a, dot, root, name) for a in args[1:]]
        if kind == "value":
            if rest:
                raise TemplateError(f"{name}: a literal cannot take arguments")
            return head
        if kind == "field":
            if head == ".Files.Get":
                (path,) = rest
                with open(os.path.join(self.dir, path)) as f:
                    return f.read()
            if rest:
                raise TemplateError(f"{name}: {head} is a field, not a function")
            return self._field(head, dot, root, name)
        function = _FUNCTIONS.get(head)
        if head == "include":
            template, context = rest
            if template not in self.defines:
                raise TemplateError(f"{name}: include of undefined template {template!r}")
            return self._render_nodes(self.defines[template], context, root, name)
        if function is None:
            raise TemplateError(f"{name}: function {head!r} is not supported by this renderer")
        return function(*rest)

    def _arg(self, arg, dot, root, name):
        kind, value = arg
        if kind == "value":
            return value
        if kind == "field":
            return self._field(value, dot, root, name)
        raise TemplateError(f"{name}: function {value!r} used as an argument needs parentheses")


def _format(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        raise TemplateError(f"a map or list printed without toYaml: {value!r}")
    return str(value)


def _indent(spaces, text):
    pad = " " * spaces
    return "\n".join(pad + line if line else line for line in str(text).split("\n"))


_FUNCTIONS = {
    "toYaml": _to_yaml,
    "nindent": lambda spaces, text: "\n" + _indent(spaces, text),
    "indent": _indent,
    "quote": lambda value: '"' + _format(value).replace("\\", "\\\\").replace('"', '\\"') + '"',
    "default": lambda fallback, value=None: value if _truthy(value) else fallback,
    "not": lambda value: not _truthy(value),
    "trunc": lambda length, text: str(text)[:length],
    "trimSuffix": lambda suffix, text: (text[:-len(suffix)] if suffix and text.endswith(suffix)
                                        else text),
}


def _merge(base, override):
    if not isinstance(base, dict) or not isinstance(override, dict):
        return override
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merge(base.get(key), value) if key in base else value
    return merged
