// A q-select that takes typed letters as a native select does: while its menu is closed, a
// letter picks the next option whose label starts with what was typed (the same letter again
// steps to the next such option), without opening the menu; Tab then moves on. Quasar's own
// type-ahead opens the menu and focuses the field later, which on a busy machine pulled the
// focus back after the person had already tabbed on. Arrow keys, Enter and Space still open
// the menu to browse.
export default {
  props: ["options"],
  template: `
    <q-select ref="qRef" :options="options" @keydown="typeAhead"
      @popup-show="menuOpen = true" @popup-hide="menuOpen = false"
      @update:model-value="(value) => $emit('update:model-value', value)">
      <template v-for="(_, slot) in $slots" v-slot:[slot]="slotProps">
        <slot :name="slot" v-bind="slotProps || {}" />
      </template>
    </q-select>
  `,
  emits: ["update:model-value"],
  data() {
    return { menuOpen: false, typed: "", typedAt: 0 };
  },
  methods: {
    typeAhead(event) {
      const letter = event.key;
      if (this.menuOpen || letter.length !== 1 || letter === " ") return;
      if (event.ctrlKey || event.altKey || event.metaKey) return;
      event.qKeyEvent = true; // Quasar leaves a key marked so alone
      event.preventDefault();
      const now = Date.now();
      const typed = (now - this.typedAt < 1000 ? this.typed : "") + letter.toLowerCase();
      this.typedAt = now;
      const repeated = [...typed].every((char) => char === typed[0]);
      this.typed = repeated ? typed[0] : typed;
      const labels = this.options.map((option) => String(option.label).toLowerCase());
      const current = this.$attrs["model-value"]?.value ?? -1;
      // From the option after the current one when stepping through one letter, else the first.
      const start = repeated ? current + 1 : 0;
      const order = [...labels.keys()].map((offset) => (start + offset) % labels.length);
      const index = order.find((i) => labels[i].startsWith(this.typed));
      if (index !== undefined && index !== current) {
        this.$emit("update:model-value", this.options[index]);
      }
    },
  },
};
