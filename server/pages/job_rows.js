// A store's job rows, rendered in the browser from plain row data (server/pages/job_rows.py).
// NiceGUI re-renders a page's whole element tree on any element update; here a changed job is
// one `place` call that re-renders that job's row component alone, however long the list is.

const JobRow = {
  props: { row: Object, link: Boolean },
  emits: ["mark"],
  template: `
    <div :data-job-id="row.job_id" :data-tone="row.tone"
         :class="'w-full rounded-lg border-l-[10px] shadow-sm px-5 py-3 ' + row.tone_classes">
      <div class="w-full flex items-center gap-4 no-wrap">
        <div class="flex flex-col w-36 shrink-0">
          <a v-if="link" :href="'/store/jobs/' + row.job_id"
             class="text-2xl font-bold text-slate-900 nicegui-link">{{ row.job_number }}</a>
          <span v-else class="text-2xl font-bold text-slate-900">{{ row.job_number }}</span>
          <div class="flex items-center gap-2">
            <span class="text-sm text-slate-600">{{ row.tray }}</span>
            <q-badge v-if="row.rush" color="red-8" class="text-sm">RUSH</q-badge>
          </div>
          <span class="text-sm text-slate-600">{{ row.patient }}</span>
        </div>
        <div class="flex flex-col gap-1 grow min-w-[11rem]">
          <span class="text-lg font-semibold" data-part="state">{{ row.state }}</span>
          <div class="w-full flex items-center gap-3 no-wrap">
            <q-linear-progress :value="row.progress" size="10px" rounded instant-feedback class="grow"
                               :color="row.tone === 'red' ? 'red-7' : 'primary'" />
            <span class="text-sm text-slate-600 shrink-0">{{ row.step }}</span>
          </div>
        </div>
        <div class="flex flex-col w-52 shrink-0">
          <span class="text-base">{{ row.promised }}</span>
          <span v-if="row.eta" data-part="eta"
                :class="row.eta_late ? 'text-base text-red-700 font-bold' : 'text-base text-slate-700'"
          >{{ row.eta }}</span>
        </div>
        <div class="flex flex-col gap-2 shrink-0">
          <q-btn v-if="row.can_mark_ready" label="Ready for pickup" icon="storefront"
                 unelevated no-caps color="green-8"
                 @click="$emit('mark', { job_id: row.job_id, action: 'ready_for_pickup' })" />
          <q-btn v-if="row.can_mark_delivered" label="Delivered to patient" icon="how_to_reg"
                 unelevated no-caps color="primary"
                 @click="$emit('mark', { job_id: row.job_id, action: 'delivered' })" />
        </div>
      </div>
      <div v-for="flag in row.flags" :key="flag.kind" :data-flag="flag.kind"
           class="flex items-center gap-2 mt-1 no-wrap">
        <q-badge :color="flag.red ? 'red-8' : 'amber-9'" class="text-sm">{{ flag.label }}</q-badge>
        <span :class="flag.red ? 'text-base text-red-800 font-semibold' : 'text-base text-amber-900'"
        >{{ flag.reason }}</span>
      </div>
    </div>`,
};

export default {
  components: { JobRow },
  props: {
    rows: Array,
    link: Boolean,
    filters: Array, // [{value, label}]; none: a single job's head, no filter bar
    counts: Object, // {filter: open jobs it shows}
    view: String, // the filter whose rows these are
    more: Boolean, // rows follow the loaded ones ("Show more")
  },
  emits: ["mark", "view", "more"],
  data() {
    return { items: this.rows.slice(), shownCounts: { ...this.counts }, hasMore: this.more };
  },
  watch: {
    // The whole element was sent again (a new filter, a reconnect): it is the truth.
    rows(rows) {
      this.items = rows.slice();
    },
    counts(counts) {
      this.shownCounts = { ...counts };
    },
    more(more) {
      this.hasMore = more;
    },
  },
  computed: {
    options() {
      return this.filters.map(({ value, label }) => ({
        value,
        label: `${label} (${this.shownCounts[value] ?? 0})`,
        attrs: { "data-filter": value },
      }));
    },
  },
  methods: {
    // The job's row at `index` of the list, wherever it was before (the server's order).
    place(row, index) {
      this.remove(row.job_id);
      this.items.splice(index, 0, row);
    },
    append(rows, more) {
      this.items.push(...rows);
      this.hasMore = more;
    },
    setCounts(counts) {
      this.shownCounts = counts;
    },
    // Methods, not inline arrows: the template compiler here does not cache handlers, and a
    // new function each render would count as a changed prop and re-render every row.
    forward(mark) {
      this.$emit("mark", mark);
    },
    choose(view) {
      this.$emit("view", view);
    },
    showMore() {
      this.$emit("more");
    },
    remove(jobId) {
      const index = this.items.findIndex((item) => item.job_id === jobId);
      if (index >= 0) this.items.splice(index, 1);
    },
  },
  template: `
    <div class="w-full flex flex-col gap-3">
      <q-btn-toggle v-if="filters.length" :model-value="view" @update:model-value="choose"
                    :options="options" size="lg" no-caps toggle-color="primary" class="self-start" />
      <job-row v-for="row in items" :key="row.job_id" :row="row" :link="link" @mark="forward" />
      <div v-if="filters.length && items.length === 0" class="text-lg text-slate-500 p-4">No jobs here.</div>
      <q-btn v-if="filters.length && hasMore" label="Show more" icon="expand_more" outline no-caps
             size="lg" color="primary" class="self-center" data-part="more" @click="showMore" />
    </div>`,
};
