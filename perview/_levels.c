/* The per-line token scan of perview/classify.py, in C.
 *
 * `scan(block, parts, lines)` gives, for each of the `lines` lines of `block` (those that end
 * with a newline), the code letter that `re.findall` of `_lines(parts)` and the `_CODES` mapping
 * give there: the first of `parts` (indices into PARTS, in order) that matches at the line's
 * start decides, and a line none matches gets '0'. The regex costs 0.5-2 us a line; a flood of log lines at 5 M lines/s leaves
 * the classifier about 30 ns a line, which only a scan that looks at each byte once or twice can
 * keep to. Each part below mirrors its regex in `_PARTS`, backtracking included: the comments say
 * why the simpler loop finds what the regex finds. tests/test_classify_c.py checks the two agree.
 *
 * The words (level words, structure heads, exception suffixes, JSON keys) and the codes are
 * Python's: `configure` takes them from classify.py once, so a word is written in one place.
 *
 * Every read stays inside the buffer: a line is scanned only up to its newline, which no part
 * accepts as one of its bytes, so each loop stops at it at the latest; a look one byte ahead is
 * taken only from a byte that is not that newline.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef unsigned char u8;

enum { STRUCTURAL, JSON, KLOG, PRI, REDIS, LOGFMT, EXCEPTION, GO_FRAME, TEXT, NPARTS };
static const char *const PART_NAMES[NPARTS] = {
    "structural", "json", "klog", "pri", "redis", "logfmt", "exception", "go_frame", "text",
};

/* Byte classes, as the regexes' (bytes patterns: \w, \d and \s are ASCII). */
enum {
    WORD = 1 << 0,       /* \w */
    DIGIT = 1 << 1,      /* \d */
    ALPHA = 1 << 2,      /* [A-Za-z] */
    STOP = 1 << 3,       /* ends a text field: [\s\[:\n\x1b] */
    BLANK = 1 << 4,      /* [^\S\n] */
    GO_ANY = 1 << 5,     // [\w.*/()\[\]-], the Go frame's look-ahead
    GO_NAME = 1 << 6,    /* [\w./\[\]-] */
    EXC_START = 1 << 7,  /* [A-Za-z_$] */
    EXC_WORD = 1 << 8,   /* [\w$] */
    /* What may follow a level word of each kind (`_AFTER_UPPER`, `_AFTER_LOWER`, `_AFTER_PG`);
       these three bits are also a word's kinds in the table below. */
    AFTER_UPPER = 1 << 9,
    AFTER_LOWER = 1 << 10,
    AFTER_PG = 1 << 11,
};
#define KINDS_SHIFT 9
static uint16_t byte_class[256];

static inline int is(u8 c, int class) { return byte_class[c] & class; }

static void set_class(const char *bytes, size_t n, int class) {
    for (size_t i = 0; i < n; i++) byte_class[(u8)bytes[i]] |= class;
}

static void init_classes(void) {
    for (int c = 0; c < 256; c++) {
        int alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
        int digit = c >= '0' && c <= '9';
        if (alpha) byte_class[c] |= ALPHA | EXC_START;
        if (digit) byte_class[c] |= DIGIT;
        if (alpha || digit || c == '_') byte_class[c] |= WORD | GO_ANY | GO_NAME | EXC_WORD;
    }
    set_class(" \t\n\r\f\v[:\x1b", 9, STOP);
    set_class(" \t\r\f\v", 5, BLANK);
    set_class(".*/()[]-", 8, GO_ANY);
    set_class("./[]-", 5, GO_NAME);
    set_class("_$", 2, EXC_START);
    set_class("$", 1, EXC_WORD);
    set_class(" :]>)|,\t\x1b", 9, AFTER_UPPER);
    set_class(":]>)\x1b", 5, AFTER_LOWER);
    set_class(":", 1, AFTER_PG);
}

/* Tokens to codes: `_CODES`, and the text rule's words with their kinds, in one open-addressed
   table (a few hundred words; the longest token any rule can take is a few dozen bytes). */
#define MAX_WORD 48
#define TABLE_SIZE 2048
typedef struct {
    u8 len;   /* 0: an empty slot */
    u8 code;  /* 0: no code (a text word always has one) */
    u8 kinds; /* the AFTER_* bits, shifted down: which bytes may follow it as a level word */
    u8 word[MAX_WORD];
} Entry;
static Entry table[TABLE_SIZE];

static uint32_t hash(const u8 *p, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

static Entry *find(const u8 *p, size_t n, int insert) {
    if (n == 0 || n > MAX_WORD) return NULL;
    for (uint32_t i = hash(p, n);; i++) {
        Entry *e = &table[i & (TABLE_SIZE - 1)];
        if (e->len == 0) {
            if (!insert) return NULL;
            e->len = (u8)n;
            memcpy(e->word, p, n);
            return e;
        }
        if (e->len == n && memcmp(e->word, p, n) == 0) return e;
    }
}

/* The code of a token a part took: '0' for one `_CODES` does not hold, as `.get(token, "0")`. */
static int code_of(const u8 *p, size_t n) {
    Entry *e = find(p, n, 0);
    return e && e->code ? e->code : '0';
}

typedef struct {
    u8 bytes[MAX_WORD];
    size_t len;
    int code;
} Head;
#define MAX_HEADS 32
static Head structure[MAX_HEADS], suffixes[MAX_HEADS], json_keys[MAX_HEADS];
static Py_ssize_t n_structure, n_suffixes, n_json_keys, max_fields = -1;
/* Most quotes of a JSON line, and most words of a text line, start nothing a rule looks for:
   these let a look at one or two bytes pass them over (a journald record has dozens of keys,
   and a line of text up to 15 words before its level). */
static u8 starts_key[256], starts_head[256];
static u8 starts_word[256][256 / 8]; /* the first two bytes of a level word, as bits */
static size_t shortest_word = MAX_WORD, longest_word;

static int may_be_word(const u8 *p, size_t n) {
    return n >= shortest_word && n <= longest_word &&
           (starts_word[p[0]][p[1] >> 3] >> (p[1] & 7)) & 1;
}

/* Each part: the code of the line [s, e) (e is its newline), or -1 where the part does not
   match and the next one is tried. */

/* `(?=(\n|[ \t]|heads))`: a blank line, an indented one, or a structure head. */
static int part_structural(const u8 *s, const u8 *e) {
    if (*s == '\n' || *s == ' ' || *s == '\t') return code_of(s, 1);
    if (!starts_head[*s]) return -1;
    for (Py_ssize_t i = 0; i < n_structure; i++) {
        const Head *h = &structure[i];
        if ((size_t)(e - s) >= h->len && memcmp(s, h->bytes, h->len) == 0) return h->code;
    }
    return -1;
}

/* A line starting `{"` always matches (the regex's `|\{`): the first `"key"` of the keys, then
   blanks, `:`, blanks, an optional `"` and a word, gives the word; none gives '0'. The lazy
   `[^\n]*?` tries each place in turn, so the first `"` where all that follows wins. */
static int part_json(const u8 *s, const u8 *e) {
    if (s[0] != '{' || s[1] != '"') return -1;
    for (const u8 *q = s + 1; q < e && (q = memchr(q, '"', (size_t)(e - q))) != NULL; q++) {
        if (!starts_key[q[1]]) continue;
        for (Py_ssize_t i = 0; i < n_json_keys; i++) {
            const Head *k = &json_keys[i];
            if ((size_t)(e - q - 1) <= k->len || memcmp(q + 1, k->bytes, k->len) != 0 ||
                q[1 + k->len] != '"')
                continue;
            const u8 *v = q + 2 + k->len;
            while (is(*v, BLANK)) v++;
            if (*v++ != ':') break;
            while (is(*v, BLANK)) v++;
            if (*v == '"' && is(v[1], WORD)) v++; /* `"?` takes the quote only if a word follows */
            if (!is(*v, WORD)) break;
            const u8 *w = v;
            while (is(*w, WORD)) w++;
            return code_of(v, (size_t)(w - v));
        }
    }
    return '0';
}

static int digits(const u8 **p, int n) {
    for (int i = 0; i < n; i++, (*p)++)
        if (!is(**p, DIGIT)) return 0;
    return 1;
}

/* `([IWEF])(?=\d{4} \d\d:\d\d:\d\d\.\d+ )` */
static int part_klog(const u8 *s, const u8 *e) {
    (void)e;
    if (!(*s == 'I' || *s == 'W' || *s == 'E' || *s == 'F')) return -1;
    const u8 *p = s + 1;
    if (!digits(&p, 4) || *p++ != ' ' || !digits(&p, 2) || *p++ != ':' || !digits(&p, 2) ||
        *p++ != ':' || !digits(&p, 2) || *p++ != '.' || !digits(&p, 1))
        return -1;
    while (is(*p, DIGIT)) p++;
    return *p == ' ' ? code_of(s, 1) : -1;
}

/* `(<\d{1,3}>)`: the token is the whole `<N>`, whose code `_CODES` holds only for 0-191 written
   without leading zeros; any other still ends the line's parts. */
static int part_pri(const u8 *s, const u8 *e) {
    (void)e;
    if (*s != '<') return -1;
    int n = 0;
    while (n < 4 && is(s[1 + n], DIGIT)) n++;
    return n >= 1 && n <= 3 && s[1 + n] == '>' ? code_of(s, (size_t)n + 2) : -1;
}

/* `\d{1,2} `: greedy, and a third digit fails both ways. */
static int day(const u8 **p) {
    if (!is(**p, DIGIT)) return 0;
    (*p)++;
    if (is(**p, DIGIT)) (*p)++;
    return *(*p)++ == ' ';
}

/* ` [A-Z][a-z]{2}` after the day */
static int month(const u8 **p) {
    const u8 *m = *p;
    if (!(m[0] >= 'A' && m[0] <= 'Z') || !(m[1] >= 'a' && m[1] <= 'z') ||
        !(m[2] >= 'a' && m[2] <= 'z'))
        return 0;
    *p += 3;
    return 1;
}

/* `(?:\d+:[XCSM] \d{1,2} [A-Z][a-z]{2} \d{4}|\[\d+\] \d{1,2} [A-Z][a-z]{2})`
   ` \d\d:\d\d:\d\d(?:\.\d+)? ([#*.-]) `: every quantifier here is followed by a byte it cannot
   take, so trying shorter never helps and one pass decides. */
static int part_redis(const u8 *s, const u8 *e) {
    (void)e;
    const u8 *p = s;
    if (is(*p, DIGIT)) {
        while (is(*p, DIGIT)) p++;
        if (*p++ != ':') return -1;
        if (!(*p == 'X' || *p == 'C' || *p == 'S' || *p == 'M')) return -1;
        p++;
        if (*p++ != ' ' || !day(&p) || !month(&p) || *p++ != ' ' || !digits(&p, 4)) return -1;
    } else if (*p == '[') {
        p++;
        if (!digits(&p, 1)) return -1;
        while (is(*p, DIGIT)) p++;
        if (*p++ != ']' || *p++ != ' ' || !day(&p) || !month(&p)) return -1;
    } else {
        return -1;
    }
    if (*p++ != ' ' || !digits(&p, 2) || *p++ != ':' || !digits(&p, 2) || *p++ != ':' ||
        !digits(&p, 2))
        return -1;
    if (*p == '.' && is(p[1], DIGIT)) {
        p++;
        while (is(*p, DIGIT)) p++;
    }
    if (*p++ != ' ') return -1;
    const u8 *token = p;
    if (!(*p == '#' || *p == '*' || *p == '.' || *p == '-') || p[1] != ' ') return -1;
    return code_of(token, 1);
}

/* The first `level=` or `lvl=` whose `l` starts a word (the regex passes an `l` inside a word
   by `\Bl`) with a word after it, quoted or not. Two such keys never overlap, so the first by
   its `=` is the first by its `l`, and `=` is the rarer byte to look for. */
static int part_logfmt(const u8 *s, const u8 *e) {
    for (const u8 *q = s; q < e && (q = memchr(q, '=', (size_t)(e - q))) != NULL; q++) {
        const u8 *l;
        if (q - s >= 5 && memcmp(q - 5, "level", 5) == 0)
            l = q - 5;
        else if (q - s >= 3 && memcmp(q - 3, "lvl", 3) == 0)
            l = q - 3;
        else
            continue;
        if (l > s && is(l[-1], WORD)) continue;
        const u8 *v = q + 1;
        if (*v == '"' && is(v[1], WORD)) v++;
        if (!is(*v, WORD)) continue;
        const u8 *w = v;
        while (is(*w, WORD)) w++;
        return code_of(v, (size_t)(w - v));
    }
    return -1;
}

/* `(?:[A-Za-z_$][\w$]*\.)*[A-Z][\w$]*?(suffix:)(?= )`: dotted names, the last of which starts
   upper case and ends with a suffix (after at least one byte of its own), then `: `. No name
   holds a `.`, so the segments are where the dots are and only the last can be the class. */
static int part_exception(const u8 *s, const u8 *e) {
    (void)e;
    const u8 *p = s, *name;
    for (;;) {
        name = p;
        if (!is(*p, EXC_START)) return -1;
        p++;
        while (is(*p, EXC_WORD)) p++;
        if (*p != '.') break;
        p++;
    }
    if (p[0] != ':' || p[1] != ' ' || !(*name >= 'A' && *name <= 'Z')) return -1;
    for (Py_ssize_t i = 0; i < n_suffixes; i++) {
        const Head *x = &suffixes[i];
        if ((size_t)(p - name) > x->len && memcmp(p - x->len, x->bytes, x->len) == 0)
            return code_of(p - x->len, x->len + 1); /* the suffix and its colon */
    }
    return -1;
}

// `(?=[\w.*/()\[\]-]+\([^\n]*\)\n)[\w./\[\]-]*(?:\(\*[^)\n]*\)[\w./\[\]-]*)?(\()`: the line
// ends in `)`, a `(` after at least one byte of the look-ahead's class comes before that `)`,
// and the name before the first byte outside `[\w./\[\]-]` is followed by `(` (where the
// optional `(*T)` fails, the regex falls back on that same `(`).
static int part_go_frame(const u8 *s, const u8 *e) {
    if (e == s || e[-1] != ')') return -1;
    const u8 *p = s + 1;
    if (!is(*s, GO_ANY)) return -1;
    while (is(*p, GO_ANY) && !(*p == '(' && p < e - 1)) p++;
    if (*p != '(' || p >= e - 1) return -1;
    p = s;
    while (is(*p, GO_NAME)) p++;
    return *p == '(' ? code_of(p, 1) : -1;
}

/* The first of the line's first `max_fields` + 1 fields that is a level word followed by a byte
   its kind allows. Fields end at a STOP byte and are joined by one of ` \t[:` or an ANSI colour
   `\x1b[...m`; at anything else the regex's lazy repeat cannot go on. A word is letters and at
   most one digit, so a field is looked up only where such a run ends at a byte some kind
   allows. */
static int part_text(const u8 *s, const u8 *e) {
    (void)e;
    const u8 *p = s;
    for (Py_ssize_t k = 0;; k++) {
        if (is(*p, ALPHA)) {
            const u8 *q = p + 1;
            while (is(*q, ALPHA)) q++;
            if (is(*q, DIGIT)) q++;
            if (is(*q, AFTER_UPPER) && may_be_word(p, (size_t)(q - p))) {
                Entry *w = find(p, (size_t)(q - p), 0);
                if (w && (w->kinds & (byte_class[*q] >> KINDS_SHIFT))) return w->code;
            }
            p = q; /* letters and a digit are no field's end: the walk below goes on from here */
        }
        if (k == max_fields) return -1;
        while (!is(*p, STOP)) p++;
        if (*p == ' ' || *p == '\t' || *p == '[' || *p == ':') {
            p++;
        } else if (*p == 0x1b && p[1] == '[') {
            p += 2;
            while (is(*p, DIGIT) || *p == ';') p++;
            if (*p++ != 'm') return -1;
        } else {
            return -1;
        }
    }
}

/* A switch, not a table of function pointers, so that the compiler can inline the parts: a
   line of text passes eight of them before the text rule (plain text: 97 ns a line as calls,
   84 to 89 inlined). */
static inline int part(u8 id, const u8 *s, const u8 *e) {
    switch (id) {
    case STRUCTURAL: return part_structural(s, e);
    case JSON: return part_json(s, e);
    case KLOG: return part_klog(s, e);
    case PRI: return part_pri(s, e);
    case REDIS: return part_redis(s, e);
    case LOGFMT: return part_logfmt(s, e);
    case EXCEPTION: return part_exception(s, e);
    case GO_FRAME: return part_go_frame(s, e);
    default: return part_text(s, e);
    }
}

/* The codes of at most `lines` lines into `out`; returns how many lines there were (stopping
   at one more than `lines`, whose code it does not write). */
static Py_ssize_t scan_lines(const u8 *s, const u8 *end, const u8 *parts, Py_ssize_t n, u8 *out,
                             Py_ssize_t lines) {
    const u8 *e;
    Py_ssize_t line = 0;
    for (; s < end && (e = memchr(s, '\n', (size_t)(end - s))) != NULL; s = e + 1, line++) {
        if (line == lines) return line + 1;
        int code = -1;
        for (Py_ssize_t i = 0; i < n && code < 0; i++) code = part(parts[i], s, e);
        out[line] = code < 0 ? '0' : (u8)code;
    }
    return line;
}

/* Releasing the GIL lets other threads run during a long scan, but taking it back can wait a
   whole switch interval (5 ms) behind a busy thread: on the event loop that is worse than the
   scan itself, so only a scan at least that long is worth it (0.6 to 1.3 ms a MiB of logs here;
   the hub's blocks are 256 KiB). */
#define RELEASE_GIL_FROM (8 << 20)

static PyObject *scan(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer block, parts;
    Py_ssize_t lines;
    if (max_fields < 0) {
        PyErr_SetString(PyExc_RuntimeError, "configure() first");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*y*n:scan", &block, &parts, &lines)) return NULL;
    PyObject *result = NULL;
    const u8 *s = block.buf, *end = s + block.len, *ids = parts.buf;
    for (Py_ssize_t i = 0; i < parts.len; i++) {
        if (ids[i] >= NPARTS) {
            PyErr_Format(PyExc_ValueError, "no part %d", ids[i]);
            goto done;
        }
    }
    /* The caller counts the lines (the framer has, for every block), which spares a pass. */
    if (lines < 0 || lines > block.len) {
        PyErr_Format(PyExc_ValueError, "the block has fewer lines, not %zd", lines);
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, lines);
    if (result == NULL) goto done;
    u8 *out = (u8 *)PyBytes_AS_STRING(result);
    Py_ssize_t found;
    /* Only an immutable object may be read without the GIL: nothing can change it meanwhile. */
    if (block.len >= RELEASE_GIL_FROM && PyBytes_Check(block.obj)) {
        Py_BEGIN_ALLOW_THREADS found = scan_lines(s, end, ids, parts.len, out, lines);
        Py_END_ALLOW_THREADS
    } else {
        found = scan_lines(s, end, ids, parts.len, out, lines);
    }
    if (found != lines) {
        PyErr_Format(PyExc_ValueError, "the block has %s lines, not %zd",
                     found > lines ? "more" : "fewer", lines);
        Py_CLEAR(result);
    }
done:
    PyBuffer_Release(&block);
    PyBuffer_Release(&parts);
    return result;
}

static int bytes_of(PyObject *item, const u8 **p, Py_ssize_t *n) {
    if (!PyBytes_Check(item)) {
        PyErr_SetString(PyExc_TypeError, "words must be bytes");
        return 0;
    }
    *p = (const u8 *)PyBytes_AS_STRING(item);
    *n = PyBytes_GET_SIZE(item);
    if (*n == 0 || *n > MAX_WORD) {
        PyErr_Format(PyExc_ValueError, "a word of %zd bytes (1 to %d)", *n, MAX_WORD);
        return 0;
    }
    return 1;
}

/* A list of bytes into heads, each with its code from the table (0 where it has none). */
static int heads_of(PyObject *list, Head *heads, Py_ssize_t *count) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(list);
    if (n > MAX_HEADS) {
        PyErr_Format(PyExc_ValueError, "%zd heads (at most %d)", n, MAX_HEADS);
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const u8 *p;
        Py_ssize_t len;
        if (!bytes_of(PySequence_Fast_GET_ITEM(list, i), &p, &len)) return 0;
        memcpy(heads[i].bytes, p, (size_t)len);
        heads[i].len = (size_t)len;
        heads[i].code = code_of(p, (size_t)len);
    }
    *count = n;
    return 1;
}

static PyObject *configure(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *codes, *kinds, *heads, *suffix_list, *key_list;
    Py_ssize_t fields;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!n:configure", &PyDict_Type, &codes, &PyDict_Type,
                          &kinds, &PyList_Type, &heads, &PyList_Type, &suffix_list, &PyList_Type,
                          &key_list, &fields))
        return NULL;
    if (PyDict_Size(codes) + PyDict_Size(kinds) > TABLE_SIZE / 2) {
        PyErr_SetString(PyExc_ValueError, "too many words for the table");
        return NULL;
    }
    memset(table, 0, sizeof table);
    memset(starts_key, 0, sizeof starts_key);
    memset(starts_head, 0, sizeof starts_head);
    memset(starts_word, 0, sizeof starts_word);
    shortest_word = MAX_WORD;
    longest_word = 0;
    max_fields = -1; /* not usable until all of it is in */
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(codes, &pos, &key, &value)) {
        const u8 *p;
        Py_ssize_t n;
        long code = PyLong_AsLong(value);
        if (code == -1 && PyErr_Occurred()) return NULL;
        if (code <= 0 || code > 255) return PyErr_Format(PyExc_ValueError, "code %ld", code);
        if (PyBytes_Check(key) && PyBytes_GET_SIZE(key) > MAX_WORD) continue; /* a head's */
        if (!bytes_of(key, &p, &n)) return NULL;
        find(p, (size_t)n, 1)->code = (u8)code;
    }
    pos = 0;
    while (PyDict_Next(kinds, &pos, &key, &value)) {
        const u8 *p;
        Py_ssize_t n;
        long kind = PyLong_AsLong(value);
        if (kind == -1 && PyErr_Occurred()) return NULL;
        if (kind <= 0 || kind > 7) return PyErr_Format(PyExc_ValueError, "kind %ld", kind);
        if (!bytes_of(key, &p, &n)) return NULL;
        Entry *w = find(p, (size_t)n, 1);
        if (w->code == 0 || n < 2)
            return PyErr_Format(PyExc_ValueError, "level word %R: no code, or short", key);
        w->kinds |= (u8)kind;
        starts_word[p[0]][p[1] >> 3] |= (u8)(1 << (p[1] & 7));
        if ((size_t)n < shortest_word) shortest_word = (size_t)n;
        if ((size_t)n > longest_word) longest_word = (size_t)n;
    }
    if (!heads_of(heads, structure, &n_structure) ||
        !heads_of(suffix_list, suffixes, &n_suffixes) ||
        !heads_of(key_list, json_keys, &n_json_keys))
        return NULL;
    for (Py_ssize_t i = 0; i < n_json_keys; i++) starts_key[json_keys[i].bytes[0]] = 1;
    for (Py_ssize_t i = 0; i < n_structure; i++) starts_head[structure[i].bytes[0]] = 1;
    for (Py_ssize_t i = 0; i < n_structure; i++)
        if (structure[i].code == 0)
            return PyErr_Format(PyExc_ValueError, "a structure head without a code");
    if (fields < 0) return PyErr_Format(PyExc_ValueError, "max_fields %zd", fields);
    max_fields = fields;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(codes, kinds, structure, suffixes, json_keys, max_fields): the words and codes "
     "of classify.py"},
    {"scan", scan, METH_VARARGS,
     "scan(block, parts, lines) -> bytes: the code of each of the block's lines (those ending "
     "with a newline, of which there must be `lines`)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_levels", "The classifier's per-line scan in C (optional).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__levels(void) {
    init_classes();
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    PyObject *names = PyTuple_New(NPARTS);
    if (names == NULL) goto fail;
    for (int i = 0; i < NPARTS; i++) {
        PyObject *name = PyUnicode_FromString(PART_NAMES[i]);
        if (name == NULL) {
            Py_DECREF(names);
            goto fail;
        }
        PyTuple_SET_ITEM(names, i, name);
    }
    if (PyModule_AddObject(m, "PARTS", names) < 0) {
        Py_DECREF(names);
        goto fail;
    }
    if (PyModule_AddIntConstant(m, "UPPER", AFTER_UPPER >> KINDS_SHIFT) < 0 ||
        PyModule_AddIntConstant(m, "LOWER", AFTER_LOWER >> KINDS_SHIFT) < 0 ||
        PyModule_AddIntConstant(m, "PG", AFTER_PG >> KINDS_SHIFT) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
