/** ECharts, imported piece by piece so the bundle only carries what the screens draw. */
import * as echarts from 'echarts/core'
import { BarChart, FunnelChart, LineChart, ScatterChart } from 'echarts/charts'
import { GridComponent, LegendComponent, MarkLineComponent, TooltipComponent } from 'echarts/components'
import { CanvasRenderer } from 'echarts/renderers'

echarts.use([
  FunnelChart,
  BarChart,
  LineChart,
  ScatterChart,
  GridComponent,
  LegendComponent,
  MarkLineComponent,
  TooltipComponent,
  CanvasRenderer,
])

export { echarts }
export type ECharts = ReturnType<typeof echarts.init>
