// lpm_trie_map.cpp: BPF_MAP_TYPE_LPM_TRIE (the kernel's kernel/bpf/
// lpm_trie.c): longest-prefix match over keys { u32 prefixlen; u8 data[] }
// with 1 to 256 data bytes, a path-compressed binary trie of the kernel's
// shape (every intermediate node has two children), so that get_next_key
// walks the same post-order the kernel's trie_get_next_key does.
//
// Memory: BPF_F_NO_PREALLOC is required, as in the kernel. Nodes are taken
// from the segment as entries come, in chunks of up to 32 (ENOMEM when it is
// full, leaving the other maps as they are), and a removed node goes to the
// map's free list for the next insert, never back to the segment while the
// map exists, so a reader that still holds one reads valid (if stale)
// memory.
//
// Locking: writers (update, delete) hold the map's robust mutex and bump a
// sequence count around their change, odd while it lasts. Each change
// publishes fully built nodes with single release stores, so the trie is
// whole at every instant. Lookups take no lock: they walk (at most
// max_prefixlen + 1 nodes) and retry when the count moved; after many
// retries (a writer killed while the count was odd) they read under the
// mutex, whose next owner repairs the count. A process killed in an update
// leaks at most the nodes it was building.
#include "map_common.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/maps_userspace/maps_userspace.hpp>
#include <bpftime/shm/robust_mutex.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>

namespace bpftime::maps_userspace {
namespace {

using namespace bpftime::handlers;

constexpr uint32_t LPM_MAGIC = 0x4c504d54; // "LPMT"
// The layout of state and node. 1: the first versioned state.
constexpr uint32_t LPM_STATE_VERSION = 1;

// The kernel's LPM_CREATE_FLAG_MASK and size limits.
constexpr uint32_t CREATE_FLAGS = BPF_F_NO_PREALLOC | BPF_F_NUMA_NODE |
				  BPF_F_ACCESS_MASK;
constexpr uint32_t DATA_SIZE_MAX = 256;
constexpr uint32_t KEY_SIZE_MIN = 4 + 1;
constexpr uint32_t KEY_SIZE_MAX = 4 + DATA_SIZE_MAX;
// KMALLOC_MAX_SIZE - LPM_DATA_SIZE_MAX - sizeof(struct lpm_trie_node) (32
// on 64-bit).
constexpr uint32_t VALUE_SIZE_MAX = KMALLOC_MAX_SIZE - DATA_SIZE_MAX - 32;
constexpr uint32_t FLAG_IM = 1; // LPM_TREE_NODE_FLAG_IM: an intermediate node

struct node {
	std::atomic<int64_t> child[2]; // offsets from the state; 0: none
	uint32_t prefixlen;
	uint32_t flags;
	int64_t free_next;
	// data[data_size], then the value at value_off()
	uint8_t *data() noexcept
	{
		return reinterpret_cast<uint8_t *>(this + 1);
	}
};
static_assert(sizeof(node) == 32);

struct state {
	map_state_header header;
	uint32_t key_size;
	uint32_t value_size;
	uint32_t max_entries;
	uint32_t map_flags;
	uint32_t data_size;
	uint32_t max_prefixlen;
	uint32_t n_entries;  // under the lock
	uint32_t value_off;  // of the value in a node, from node::data()
	uint32_t node_size;
	std::atomic<uint32_t> seq; // odd while a writer changes the trie
	std::atomic<int64_t> root;
	int64_t free_head;   // under the lock
	int64_t chunks_head; // chunks of nodes, linked through their header
	int64_t manager_off;
	shm::robust_mutex lock;

	char *self() noexcept
	{
		return reinterpret_cast<char *>(this);
	}
	node *at(int64_t off) noexcept
	{
		return off ? reinterpret_cast<node *>(self() + off) : nullptr;
	}
	int64_t off_of(node *n) noexcept
	{
		return n ? reinterpret_cast<char *>(n) - self() : 0;
	}
	uint8_t *value_of(node *n) noexcept
	{
		return n->data() + value_off;
	}
	shm::segment_manager *manager() noexcept
	{
		return reinterpret_cast<shm::segment_manager *>(self() +
								manager_off);
	}
};
static_assert(sizeof(state) == 120);

struct lpm_key {
	uint32_t prefixlen;
	const uint8_t *data;
};

lpm_key key_of(const void *k)
{
	lpm_key out;
	memcpy(&out.prefixlen, k, 4);
	out.data = static_cast<const uint8_t *>(k) + 4;
	return out;
}

int extract_bit(const uint8_t *data, uint32_t index)
{
	return !!(data[index / 8] & (1 << (7 - (index % 8))));
}

// The kernel's longest_prefix_match: the leading bits n's data and the key
// share, up to the shorter prefix of the two. Eight, then four bytes at a
// time as big-endian numbers (the kernel compares the same way), then bytes.
uint32_t longest_prefix_match(const state *s, const node *n, const lpm_key &k)
{
	const uint32_t limit = std::min(n->prefixlen, k.prefixlen);
	const uint8_t *d = const_cast<node *>(n)->data();
	const uint32_t size = s->data_size;
	uint32_t len = 0, i = 0;
	for (; i + 8 <= size && len < limit; i += 8) {
		uint64_t a, b;
		memcpy(&a, d + i, 8);
		memcpy(&b, k.data + i, 8);
		if (uint64_t diff = __builtin_bswap64(a ^ b))
			return std::min(len + uint32_t(__builtin_clzll(diff)), limit);
		len += 64;
	}
	if (i + 4 <= size && len < limit) {
		uint32_t a, b;
		memcpy(&a, d + i, 4);
		memcpy(&b, k.data + i, 4);
		if (uint32_t diff = __builtin_bswap32(a ^ b))
			return std::min(len + uint32_t(__builtin_clz(diff)), limit);
		len += 32;
		i += 4;
	}
	for (; i < size && len < limit; i++) {
		uint8_t diff = d[i] ^ k.data[i];
		if (diff)
			return std::min(len + uint32_t(__builtin_clz(uint32_t(diff)) - 24),
					limit);
		len += 8;
	}
	return std::min(len, limit);
}

// The walk of trie_lookup_elem; nullptr when nothing matches.
node *find_longest(state *s, const lpm_key &k)
{
	node *found = nullptr;
	node *n = s->at(s->root.load(std::memory_order_acquire));
	for (uint32_t depth = 0; n && depth <= s->max_prefixlen; depth++) {
		uint32_t matchlen = longest_prefix_match(s, n, k);
		if (matchlen == s->max_prefixlen) {
			found = n;
			break;
		}
		if (matchlen < n->prefixlen)
			break;
		if (!(n->flags & FLAG_IM))
			found = n;
		n = s->at(n->child[extract_bit(k.data, n->prefixlen)].load(
			std::memory_order_acquire));
	}
	return found;
}

class writer {
    public:
	explicit writer(state *s) : s_(s)
	{
		auto st = s_->lock.lock_checked();
		err_ = st ? 0 : st.error().code;
		if (err_)
			return;
		// A writer killed inside its change left the count odd.
		uint32_t q = s_->seq.load(std::memory_order_relaxed);
		if (q & 1)
			s_->seq.store(q + 1, std::memory_order_relaxed);
	}
	~writer()
	{
		if (!err_)
			(void)s_->lock.unlock_checked();
	}
	int error() const
	{
		return err_;
	}
	// Around each change of the trie.
	void begin()
	{
		s_->seq.fetch_add(1, std::memory_order_relaxed);
		std::atomic_thread_fence(std::memory_order_release);
	}
	void end()
	{
		s_->seq.fetch_add(1, std::memory_order_release);
	}

    private:
	state *s_;
	int err_;
};

// Nodes are carved from chunks of up to CHUNK_NODES (64 KiB at most), each
// node on its own cache lines: a lookup touches one line per level for
// small values, as with the kernel's slab objects.
constexpr uint32_t CHUNK_NODES = 32;

// Takes a chunk from the segment and puts its nodes on the free list;
// false when the segment has no room. Under the lock.
bool grow(state *s)
{
	const uint32_t count = std::clamp(65536u / s->node_size, 1u, CHUNK_NODES);
	const size_t bytes = 64 + size_t(count) * s->node_size;
	void *m = s->manager()->allocate_aligned(bytes, 64, std::nothrow);
	if (!m)
		return false;
	auto *c = static_cast<char *>(m);
	memcpy(c, &s->chunks_head, sizeof(int64_t));
	s->chunks_head = c - s->self();
	for (uint32_t i = count; i-- > 0;) {
		auto *n = reinterpret_cast<node *>(c + 64 + size_t(i) * s->node_size);
		n->free_next = s->free_head;
		s->free_head = s->off_of(n);
	}
	return true;
}

// A node for an entry or an intermediate node, from the free list (grown
// by a chunk when empty); nullptr when the segment is full. Under the lock.
node *alloc_node(state *s)
{
	if (!s->free_head && !grow(s))
		return nullptr;
	node *n = s->at(s->free_head);
	s->free_head = n->free_next;
	new (&n->child[0]) std::atomic<int64_t>(0);
	new (&n->child[1]) std::atomic<int64_t>(0);
	n->flags = 0;
	n->free_next = 0;
	return n;
}

void free_node(state *s, node *n)
{
	n->free_next = s->free_head;
	s->free_head = s->off_of(n);
}

// The kernel's trie_alloc (its checks, in its order).
int lpm_create(const map_create_args *a, void **out, char *err, size_t err_len)
{
	if (a->max_entries == 0)
		return set_error(err, err_len, EINVAL, "max_entries is 0");
	if (!(a->map_flags & BPF_F_NO_PREALLOC))
		return set_error(err, err_len, EINVAL,
				 "map_flags 0x%x lacks BPF_F_NO_PREALLOC, which "
				 "LPM tries require",
				 a->map_flags);
	if (a->map_flags & ~CREATE_FLAGS)
		return set_error(err, err_len, EINVAL,
				 "map_flags 0x%x has bits LPM tries do not take "
				 "(allowed: 0x%x)",
				 a->map_flags, CREATE_FLAGS);
	if (a->key_size < KEY_SIZE_MIN || a->key_size > KEY_SIZE_MAX)
		return set_error(err, err_len, EINVAL,
				 "key size %u: LPM keys are a 4-byte prefix "
				 "length and 1 to 256 data bytes (5 to 260)",
				 a->key_size);
	if (a->value_size < 1 || a->value_size > VALUE_SIZE_MAX)
		return set_error(err, err_len, EINVAL,
				 "value size %u is outside 1 to %u", a->value_size,
				 VALUE_SIZE_MAX);
	auto *mgr = static_cast<shm::segment_manager *>(a->segment_manager);
	void *mem = mgr->allocate(sizeof(state), std::nothrow);
	if (!mem)
		return set_error(err, err_len, ENOMEM, "the segment is full");
	memset(mem, 0, sizeof(state));
	auto *s = static_cast<state *>(mem);
	new (&s->lock) shm::robust_mutex();
	new (&s->seq) std::atomic<uint32_t>(0);
	new (&s->root) std::atomic<int64_t>(0);
	s->key_size = a->key_size;
	s->value_size = a->value_size;
	s->max_entries = a->max_entries;
	s->map_flags = a->map_flags;
	s->data_size = a->key_size - 4;
	s->max_prefixlen = s->data_size * 8;
	s->value_off = (s->data_size + 7) & ~7u;
	s->node_size = (uint32_t(sizeof(node)) + s->value_off +
			((a->value_size + 7) & ~7u) + 63) &
		       ~63u;
	s->manager_off = reinterpret_cast<char *>(mgr) - s->self();
	s->header.version = LPM_STATE_VERSION;
	s->header.magic = LPM_MAGIC;
	*out = s;
	return 0;
}

void lpm_destroy(void *segment_manager, void *sp)
{
	auto *mgr = static_cast<shm::segment_manager *>(segment_manager);
	auto *s = static_cast<state *>(sp);
	// Every node lives in a chunk: the chunks are all there is to free.
	for (int64_t c = s->chunks_head; c;) {
		char *chunk = s->self() + c;
		memcpy(&c, chunk, sizeof(int64_t));
		mgr->deallocate(chunk);
	}
	std::destroy_at(&s->lock);
	s->header.magic = 0;
	mgr->deallocate(s);
}

// Finds the longest match without a lock (see the file comment); copies
// the value into `copy` when given, with the same guarantee.
node *lookup_node(state *s, const void *key, void *copy)
{
	const lpm_key k = key_of(key);
	// The kernel finds nothing for a prefix longer than the data.
	if (k.prefixlen > s->max_prefixlen)
		return nullptr;
	for (int attempt = 0; attempt < 1000; attempt++) {
		uint32_t q = s->seq.load(std::memory_order_acquire);
		if (q & 1)
			continue;
		node *n = find_longest(s, k);
		if (n && copy)
			memcpy(copy, s->value_of(n), s->value_size);
		std::atomic_thread_fence(std::memory_order_acquire);
		if (s->seq.load(std::memory_order_relaxed) == q)
			return n;
	}
	writer w(s);
	if (w.error())
		return nullptr;
	node *n = find_longest(s, k);
	if (n && copy)
		memcpy(copy, s->value_of(n), s->value_size);
	return n;
}

void *lpm_lookup(void *sp, const void *key)
{
	auto *s = static_cast<state *>(sp);
	node *n = lookup_node(s, key, nullptr);
	return n ? s->value_of(n) : nullptr;
}

int lpm_lookup_copy(void *s, const void *key, void *value)
{
	return lookup_node(static_cast<state *>(s), key, value) ? 0 : -ENOENT;
}

// The kernel's trie_check_add_elem.
int check_add(state *s, uint64_t flags)
{
	if (flags == BPF_EXIST)
		return -ENOENT;
	if (s->n_entries == s->max_entries)
		return -ENOSPC;
	s->n_entries++;
	return 0;
}

// The kernel's trie_update_elem.
int lpm_update(void *sp, const void *key, const void *value, uint64_t flags)
{
	auto *s = static_cast<state *>(sp);
	if (flags > BPF_EXIST)
		return -EINVAL;
	const lpm_key k = key_of(key);
	if (k.prefixlen > s->max_prefixlen)
		return -EINVAL;
	writer w(s);
	if (w.error())
		return -w.error();
	node *nn = alloc_node(s);
	if (!nn)
		return -ENOMEM;
	nn->prefixlen = k.prefixlen;
	memcpy(nn->data(), k.data, s->data_size);
	memcpy(s->value_of(nn), value, s->value_size);

	std::atomic<int64_t> *slot = &s->root;
	node *n;
	uint32_t matchlen = 0;
	while ((n = s->at(slot->load(std::memory_order_relaxed)))) {
		matchlen = longest_prefix_match(s, n, k);
		if (n->prefixlen != matchlen || n->prefixlen == k.prefixlen ||
		    n->prefixlen == s->max_prefixlen)
			break;
		slot = &n->child[extract_bit(k.data, n->prefixlen)];
	}
	int r;
	if (!n) {
		if ((r = check_add(s, flags))) {
			free_node(s, nn);
			return r;
		}
		w.begin();
		slot->store(s->off_of(nn), std::memory_order_release);
		w.end();
		return 0;
	}
	if (n->prefixlen == matchlen) {
		// The same prefix: replace the node (an intermediate one
		// becomes an entry).
		if (!(n->flags & FLAG_IM)) {
			if (flags == BPF_NOEXIST) {
				free_node(s, nn);
				return -EEXIST;
			}
		} else if ((r = check_add(s, flags))) {
			free_node(s, nn);
			return r;
		}
		nn->child[0].store(n->child[0].load(std::memory_order_relaxed),
				   std::memory_order_relaxed);
		nn->child[1].store(n->child[1].load(std::memory_order_relaxed),
				   std::memory_order_relaxed);
		w.begin();
		slot->store(s->off_of(nn), std::memory_order_release);
		w.end();
		free_node(s, n);
		return 0;
	}
	if ((r = check_add(s, flags))) {
		free_node(s, nn);
		return r;
	}
	if (matchlen == k.prefixlen) {
		// The new prefix covers n: it goes above it.
		nn->child[extract_bit(n->data(), matchlen)].store(
			s->off_of(n), std::memory_order_relaxed);
		w.begin();
		slot->store(s->off_of(nn), std::memory_order_release);
		w.end();
		return 0;
	}
	node *im = alloc_node(s);
	if (!im) {
		s->n_entries--;
		free_node(s, nn);
		return -ENOMEM;
	}
	im->prefixlen = matchlen;
	im->flags = FLAG_IM;
	memcpy(im->data(), n->data(), s->data_size);
	int bit = extract_bit(k.data, matchlen);
	im->child[bit].store(s->off_of(nn), std::memory_order_relaxed);
	im->child[!bit].store(s->off_of(n), std::memory_order_relaxed);
	w.begin();
	slot->store(s->off_of(im), std::memory_order_release);
	w.end();
	return 0;
}

// The kernel's trie_delete_elem.
int lpm_delete(void *sp, const void *key)
{
	auto *s = static_cast<state *>(sp);
	const lpm_key k = key_of(key);
	if (k.prefixlen > s->max_prefixlen)
		return -EINVAL;
	writer w(s);
	if (w.error())
		return -w.error();
	std::atomic<int64_t> *trim = &s->root, *trim2 = trim;
	node *parent = nullptr, *n;
	uint32_t matchlen = 0;
	while ((n = s->at(trim->load(std::memory_order_relaxed)))) {
		matchlen = longest_prefix_match(s, n, k);
		if (n->prefixlen != matchlen || n->prefixlen == k.prefixlen)
			break;
		parent = n;
		trim2 = trim;
		trim = &n->child[extract_bit(k.data, n->prefixlen)];
	}
	if (!n || n->prefixlen != k.prefixlen || n->prefixlen != matchlen ||
	    (n->flags & FLAG_IM))
		return -ENOENT;
	s->n_entries--;
	const int64_t c0 = n->child[0].load(std::memory_order_relaxed);
	const int64_t c1 = n->child[1].load(std::memory_order_relaxed);
	w.begin();
	if (c0 && c1) {
		// Two children: it stays, as an intermediate node.
		n->flags |= FLAG_IM;
		w.end();
		return 0;
	}
	if (parent && (parent->flags & FLAG_IM) && !c0 && !c1) {
		// Its intermediate parent goes too; the sibling moves up.
		int64_t sibling =
			parent->child[0].load(std::memory_order_relaxed) ==
					s->off_of(n) ?
				parent->child[1].load(std::memory_order_relaxed) :
				parent->child[0].load(std::memory_order_relaxed);
		trim2->store(sibling, std::memory_order_release);
		w.end();
		free_node(s, parent);
		free_node(s, n);
		return 0;
	}
	trim->store(c0 ? c0 : c1, std::memory_order_release);
	w.end();
	free_node(s, n);
	return 0;
}

// The kernel's trie_get_next_key: entries in post-order; an absent or
// invalid key starts at the leftmost entry.
int lpm_get_next_key(void *sp, const void *key, void *next_key)
{
	auto *s = static_cast<state *>(sp);
	writer w(s);
	if (w.error())
		return -w.error();
	node *search_root = s->at(s->root.load(std::memory_order_relaxed));
	if (!search_root)
		return -ENOENT;
	node *next = nullptr;
	if (key) {
		const lpm_key k = key_of(key);
		if (k.prefixlen <= s->max_prefixlen) {
			node *stack[KEY_SIZE_MAX * 8 + 2];
			int sp_top = -1;
			node *n = search_root;
			uint32_t matchlen = 0;
			while (n) {
				stack[++sp_top] = n;
				matchlen = longest_prefix_match(s, n, k);
				if (n->prefixlen != matchlen ||
				    n->prefixlen == k.prefixlen)
					break;
				n = s->at(n->child[extract_bit(k.data,
							       n->prefixlen)]
						  .load(std::memory_order_relaxed));
			}
			if (n && n->prefixlen == k.prefixlen &&
			    n->prefixlen == matchlen && !(n->flags & FLAG_IM)) {
				// The entry itself: the next in post-order.
				n = stack[sp_top];
				search_root = nullptr;
				while (sp_top > 0) {
					node *parent = stack[sp_top - 1];
					if (s->at(parent->child[0].load()) == n) {
						search_root =
							s->at(parent->child[1].load());
						if (search_root)
							break;
					}
					if (!(parent->flags & FLAG_IM)) {
						next = parent;
						break;
					}
					n = parent;
					sp_top--;
				}
				if (!next && !search_root)
					return -ENOENT;
			}
		}
	}
	if (!next) {
		// The leftmost entry under search_root.
		for (node *n = search_root; n;) {
			if (n->flags & FLAG_IM) {
				n = s->at(n->child[0].load());
			} else {
				next = n;
				n = s->at(n->child[0].load());
				if (!n)
					n = s->at(next->child[1].load());
			}
		}
	}
	memcpy(next_key, &next->prefixlen, 4);
	memcpy(static_cast<uint8_t *>(next_key) + 4, next->data(), s->data_size);
	return 0;
}

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = BPF_MAP_TYPE_LPM_TRIE,
	.type_name = "BPF_MAP_TYPE_LPM_TRIE",
	.provider = PROVIDER,
	.create = lpm_create,
	.destroy = lpm_destroy,
	.lookup = lpm_lookup,
	.lookup_copy = lpm_lookup_copy,
	.update = lpm_update,
	.delete_elem = lpm_delete,
	.get_next_key = lpm_get_next_key,
	.state_magic = LPM_MAGIC,
	.state_version = LPM_STATE_VERSION,
};

} // namespace

const handlers::map_ops *lpm_trie_map_ops() noexcept
{
	return &ops;
}

} // namespace bpftime::maps_userspace
