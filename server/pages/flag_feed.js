// The store's latest flags, drawn from plain entries (server/pages/store.py, FlagFeed): a new
// flag is one entry more; Vue keeps the entries already listed (keyed by flag id).
export default {
  props: { entries: Array },
  template: `
    <div class="w-full flex flex-col gap-2">
      <span v-if="!entries.length" class="text-slate-500">No flags raised.</span>
      <div v-for="entry in entries" :key="entry.flag_id" :data-flag-id="entry.flag_id"
           :class="'flex flex-col w-full' + (entry.open ? '' : ' opacity-50 line-through')">
        <div class="flex items-center gap-2">
          <a :href="'/store/jobs/' + entry.job_id" class="font-bold nicegui-link">{{ entry.job_number }}</a>
          <span :class="'font-semibold ' + (entry.red ? 'text-red-800' : 'text-amber-900')">{{ entry.label }}</span>
          <span class="text-xs text-slate-500">{{ entry.raised }}</span>
        </div>
        <span class="text-sm">{{ entry.reason }}</span>
      </div>
    </div>`,
};
