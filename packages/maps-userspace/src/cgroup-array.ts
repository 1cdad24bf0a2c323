// CgroupArray: a typed view of BPF_MAP_TYPE_CGROUP_ARRAY, the cgroups that
// bpf_current_task_under_cgroup(map, index) tests the calling thread against.
//
//   const cg = new CgroupArray(reg.createMap({ type: MapType.CgroupArray, name: 'cgroup_map',
//                                              keySize: 4, valueSize: 4, maxEntries: 1 }));
//   cg.set(0, '/sys/fs/cgroup/unified/my.slice');   // a cgroup2 directory, or an open fd of one
import { closeSync, openSync } from 'node:fs';
import { type BpfMap, MapType } from '@bpftime/handlers';
import { checkMap, u32Buffer } from './view.js';

export class CgroupArray {
	readonly map: BpfMap;

	constructor(map: BpfMap) {
		checkMap('CgroupArray', map, MapType.CgroupArray, 4, 4);
		this.map = map;
	}

	/** Stores a cgroup, given its cgroup2 directory or an fd open on it; kept as the cgroup's id. */
	set(index: number, cgroup: string | number): void {
		const fd = typeof cgroup === 'number' ? cgroup : openSync(cgroup, 'r');
		try {
			this.map.update(u32Buffer(index, 'index'), u32Buffer(fd, 'cgroup fd'));
		} finally {
			if (typeof cgroup !== 'number') closeSync(fd);
		}
	}

	/** Empties the slot; false when it was empty. (Lookups are ENOTSUPP, as in the kernel.) */
	delete(index: number): boolean {
		return this.map.delete(u32Buffer(index, 'index'));
	}
}
