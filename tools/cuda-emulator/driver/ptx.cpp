// Reads what the emulator needs from a PTX module: each .entry's parameter list (sizes and
// alignments, to unpack kernelParams and to check them against the host build's C++ signature),
// its static shared memory (declarations in its body, module-scope .shared variables it or the
// .funcs it calls reference), and its .maxntid / .reqntid launch bound.
#include <regex>
#include <set>

#include "emulator.h"

namespace emu {

namespace {

std::string strip_comments(const char* text) {
    std::string out;
    for (const char* p = text; *p;) {
        if (p[0] == '/' && p[1] == '/') {
            while (*p && *p != '\n') ++p;
        } else if (p[0] == '/' && p[1] == '*') {
            p += 2;
            while (*p && !(p[0] == '*' && p[1] == '/')) ++p;
            if (*p) p += 2;
        } else {
            out += *p++;
        }
    }
    return out;
}

// Index just past the bracket that closes the one at `open`.
size_t matching(const std::string& s, size_t open, char l, char r) {
    int depth = 0;
    for (size_t i = open; i < s.size(); ++i) {
        if (s[i] == l) ++depth;
        else if (s[i] == r && --depth == 0) return i + 1;
    }
    return std::string::npos;
}

unsigned type_size(const std::string& t) {
    if (t == "pred") return 1;
    static const std::regex bits("[usbf](8|16|32|64)");
    std::smatch m;
    if (std::regex_match(t, m, bits)) return std::stoi(m[1]) / 8;
    return 0;
}

// ".shared .align 4 .b8 name[132]" / ".shared .align 4 .u32 name" -> (name, bytes)
bool shared_declaration(const std::string& decl, std::string& name, unsigned& bytes) {
    static const std::regex re(R"(\.shared\s+(?:\.align\s+\d+\s+)?\.(\w+)\s+([A-Za-z_$%][\w$]*)\s*(?:\[\s*(\d*)\s*\])?)");
    std::smatch m;
    if (!std::regex_search(decl, m, re)) return false;
    name = m[2];
    const unsigned count = m[3].matched ? (m[3].length() ? std::stoul(m[3]) : 0) : 1;
    bytes = type_size(m[1]) * count;
    return true;
}

struct Body {
    unsigned own_shared = 0;
    std::set<std::string> words;
};

Body scan_body(const std::string& body) {
    Body b;
    static const std::regex decl(R"(\.shared[^;]*;)");
    for (auto it = std::sregex_iterator(body.begin(), body.end(), decl); it != std::sregex_iterator(); ++it) {
        std::string name;
        unsigned bytes;
        if (it->str().find(".extern") == std::string::npos && shared_declaration(it->str(), name, bytes)) b.own_shared += bytes;
    }
    static const std::regex word(R"([A-Za-z_$][\w$]*)");
    for (auto it = std::sregex_iterator(body.begin(), body.end(), word); it != std::sregex_iterator(); ++it) b.words.insert(it->str());
    return b;
}

}  // namespace

int parse_ptx(const char* text, std::vector<KernelImage>& kernels, std::string& error) {
    const std::string s = strip_comments(text);
    if (s.find(".version") == std::string::npos || s.find(".target") == std::string::npos) {
        error = "the image is not PTX text (no .version / .target)";
        return INVALID_IMAGE;
    }
    std::map<std::string, unsigned> module_shared;
    std::map<std::string, Body> funcs;
    struct Entry { std::string name, params, directives; Body body; };
    std::vector<Entry> entries;

    static const std::regex head(R"((\.entry|\.func)\s*(\([^)]*\))?\s*([A-Za-z_$][\w$]*)\s*)");
    size_t pos = 0;
    int depth = 0;
    for (size_t i = 0; i < s.size();) {
        // Module-scope .shared declarations (outside every body).
        if (depth == 0 && s.compare(i, 7, ".shared") == 0) {
            size_t end = s.find(';', i);
            const size_t start = s.rfind('\n', i);
            std::string decl = s.substr(i, end - i);
            std::string prefix = s.substr(start == std::string::npos ? 0 : start, i - (start == std::string::npos ? 0 : start));
            std::string name;
            unsigned bytes;
            if (prefix.find(".extern") == std::string::npos && shared_declaration(decl, name, bytes)) module_shared[name] = bytes;
            i = end == std::string::npos ? s.size() : end + 1;
            continue;
        }
        if (s.compare(i, 6, ".entry") == 0 || s.compare(i, 5, ".func") == 0) {
            std::smatch m;
            std::string rest = s.substr(i, 4096);
            if (!std::regex_search(rest, m, head) || m.position(0) != 0) { ++i; continue; }
            const bool entry = m[1] == ".entry";
            const std::string name = m[3];
            size_t p = i + m.length(0);
            std::string params;
            if (p < s.size() && s[p] == '(') {
                const size_t close = matching(s, p, '(', ')');
                if (close == std::string::npos) { error = "unbalanced parameter list of " + name; return INVALID_PTX; }
                params = s.substr(p + 1, close - p - 2);
                p = close;
            }
            const size_t brace = s.find_first_of("{;", p);
            if (brace == std::string::npos) { error = "unterminated " + name; return INVALID_PTX; }
            std::string directives = s.substr(p, brace - p);
            if (s[brace] == ';') { i = brace + 1; continue; }  // a prototype
            const size_t close = matching(s, brace, '{', '}');
            if (close == std::string::npos) { error = "unbalanced body of " + name; return INVALID_PTX; }
            Body body = scan_body(s.substr(brace, close - brace));
            if (entry) entries.push_back({name, params, directives, std::move(body)});
            else funcs[name] = std::move(body);
            i = close;
            continue;
        }
        if (s[i] == '{') ++depth;
        else if (s[i] == '}') --depth;
        ++i;
    }
    (void)pos;

    static const std::regex param_re(R"(\.param\s+(?:\.align\s+(\d+)\s+)?\.(\w+)(?:\s+\.ptr(?:\s+\.\w+)*)?(?:\s+\.align\s+(\d+))?\s+[A-Za-z_$][\w$]*\s*(?:\[\s*(\d+)\s*\])?)");
    static const std::regex bound_re(R"(\.(?:maxntid|reqntid)\s+(\d+)(?:\s*,\s*(\d+))?(?:\s*,\s*(\d+))?)");
    for (auto& e : entries) {
        KernelImage k;
        k.name = e.name;
        for (auto it = std::sregex_iterator(e.params.begin(), e.params.end(), param_re); it != std::sregex_iterator(); ++it) {
            const auto& m = *it;
            const unsigned elem = type_size(m[2]);
            if (!elem) { error = k.name + ": unsupported parameter type ." + m[2].str(); return INVALID_PTX; }
            const unsigned count = m[4].matched ? std::stoul(m[4]) : 1;
            unsigned align = m[1].matched ? std::stoul(m[1]) : elem;
            k.params.push_back({elem * count, align});
        }
        std::smatch b;
        if (std::regex_search(e.directives, b, bound_re)) {
            k.max_threads = std::stoul(b[1]);
            if (b[2].matched) k.max_threads *= std::stoul(b[2]);
            if (b[3].matched) k.max_threads *= std::stoul(b[3]);
        }
        // Static shared memory: own declarations plus module-scope variables reachable through calls.
        std::set<std::string> seen_funcs, seen_vars;
        std::vector<const Body*> todo{&e.body};
        k.static_shared = e.body.own_shared;
        while (!todo.empty()) {
            const Body* body = todo.back();
            todo.pop_back();
            for (const auto& w : body->words) {
                if (auto v = module_shared.find(w); v != module_shared.end() && seen_vars.insert(w).second) k.static_shared += v->second;
                if (auto f = funcs.find(w); f != funcs.end() && seen_funcs.insert(w).second) {
                    k.static_shared += f->second.own_shared;
                    todo.push_back(&f->second);
                }
            }
        }
        kernels.push_back(std::move(k));
    }
    return SUCCESS;
}

}  // namespace emu
