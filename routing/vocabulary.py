"""The menu's own words (not department data: that is the knowledge base and
hotline.toml). Fillers, operator requests, keypad phrases, and the cues of the
self-service topics (office hours, address, progress of an application)."""

from __future__ import annotations

# Removed before matching, longest first. Not "额" (额度) nor "这个" (这个月).
FILLERS = (
    "我想问一下", "我想咨询一下", "想咨询一下", "我想问问", "我想问下", "想问一下", "请问一下",
    "咨询一下", "问一下", "麻烦你", "麻烦您", "请问", "你好", "您好", "那个", "就是", "然后",
    "一下", "谢谢", "喂", "嗯", "啊", "呃", "哦", "噢", "唉", "哎", "呀", "吧", "呢", "嘛", "哈",
)

# "人工"/"转人工"/"找人"/"0" always reach a person.
OPERATOR_TERMS = (
    "转人工", "人工服务", "人工客服", "人工台", "人工", "找人", "真人", "接线员", "话务员",
    "客服人员", "客服", "找工作人员", "叫工作人员", "转工作人员", "要工作人员", "找个工作人员",
    "不要机器", "机器人",
)
# ...unless the caller says the opposite, or the words are part of something else.
OPERATOR_NEGATIONS = ("不要", "不用", "不需要", "别", "不找")
# ...but 别 in these words is no "don't" ("没识别对，换人工吧").
NEGATION_EXCEPTIONS = ("识别", "区别", "特别", "类别", "级别", "分别", "告别", "辨别", "鉴别", "性别", "差别",
                       "个别")
OPERATOR_EXCEPTIONS = ("找人社", "人工智能", "人工授精", "人工费")
# Words for the people themselves, which a complaint can be about ("客服态度太差了",
# "我要投诉你们的客服"): with a complaint heard, they are not a request for a person.
OPERATOR_NOUNS = ("客服人员", "客服", "接线员", "话务员", "机器人")

# Keys said or typed: 按3 / 摁三 / 拨3 / 选三 / 安三 (a homophone of 按 that recognisers
# write) and 三号 / 三号键; a lone digit is a key too.
DIGITS = {
    "0": "0", "零": "0", "〇": "0", "洞": "0",
    "1": "1", "一": "1", "幺": "1", "2": "2", "二": "2", "两": "2", "3": "3", "三": "3",
    "4": "4", "四": "4", "5": "5", "五": "5", "6": "6", "六": "6", "7": "7", "七": "7",
    "8": "8", "八": "8", "9": "9", "九": "9", "*": "*", "#": "#",
}
KEY_VERBS = "按摁拨选安暗案点"
KEY_SUFFIXES = ("号键", "号", "键")
# After a digit these mean it is not a key ("三号楼", "一下", "五路公交").
NOT_KEY_AFTER = "十百千万下个些点楼线路层门号位岁年月日天次套"
NAMED_KEYS = {"星号": "*", "井号": "#"}

# Self-service topics. A keyword made only of these cues (and GENERIC words) is a
# topic word: it helps choose an item, never a department.
TOPIC_CUES = {
    "hours": ("几点", "上班", "下班", "办公时间", "工作时间", "营业时间", "开门", "关门", "周末",
              "周六", "周日", "星期六", "星期天", "礼拜天", "午休", "中午休息", "开不开"),
    "address": ("地址", "在哪", "哪里", "哪儿", "怎么走", "怎么去", "位置", "什么地方", "几路车",
                "坐几路", "哪条路"),
    "progress": ("进度", "办到哪", "办好了没", "办好没", "好了没有", "审核到哪", "到哪一步",
                 "什么时候能拿", "什么时候拿证", "什么时候出证", "编号"),
}
GENERIC = ("办理", "办件", "查询", "审批", "受理", "怎么", "如何", "可以", "能不能", "需要", "什么",
           "时间", "中心", "查")
# Asking to be put through: route, do not play a self-service answer.
TRANSFER_CUES = ("转接", "转到", "帮我转", "转一下", "接到", "给我转", "转给")

# Toneless syllables of function words and the commonest verbs: an approximate
# match must rest on more than these.
COMMON_SYLLABLES = frozenset(
    "de di le you mei shi bu yi ge zen me na ne zhe wo ni ta men ban yao neng ke hui zai qu lai "
    "shang xia hao ma ba a jiu dou ye he gen dao guo shei zuo kan xiang wen".split())

# Answers to "您是要办理……吗？". Negative phrases are checked first (不是 contains 是).
CONFIRM_NO = ("不是", "不对", "不要", "不用", "不需要", "错了", "搞错", "没有", "不办", "否", "不")
CONFIRM_YES = ("是的", "是", "对的", "对", "没错", "好的", "好", "可以", "行", "嗯嗯", "要", "办", "确认")
CONFIRM_KEYS = {"1": True, "2": False}   # "是请按1，不是请按2"

# Of two departments named, which one the caller asks for (routing.router._asked_for):
# words around each department word, within a few characters (a transcript has no
# punctuation to mark clauses).
# Before who the caller is ("我是个体户", "作为退休职工"): against.
IDENTITY_CUES = ("我是", "我们是", "是个", "是一名", "是一个", "作为", "身为", "本人是")
# After something already done ("房产证已经拿到了", "契税交完了"): against.
DONE_CUES = ("已经", "办好", "拿到", "有了", "下来了", "交完", "办完", "弄好", "办下来", "还清", "做过", "办过", "领完",
             "落好", "上好", "交满")
DONE_WINDOW = 4
# Before a reason ("因为离婚", "为了买房"): against.
REASON_CUES = ("因为", "为了", "由于")
# A wish or a question word before the word: for.
REQUEST_CUES = ("想", "要办", "要去", "要交", "要开", "要补", "要换", "要领", "怎么", "咋", "如何", "申请",
                "办理", "能不能", "可不可以", "可以", "需要", "给他办", "给她办", "帮我", "问问", "问一下",
                "问下", "咨询", "打听", "补办", "换领", "申领", "开具", "来办", "参加", "要给", "要把")
REQUEST_WINDOW = 5
# A subject between a wish and a department word starts another clause.
CLAUSE_SUBJECTS = ("我", "他", "她", "我们", "你们", "孩子", "老人")
# A question after the word: for.
QUESTION_CUES = ("怎么", "咋", "吗", "么", "呢", "在哪", "哪里", "哪儿", "多少", "手续", "材料", "流程",
                 "需要什么", "要什么", "能不能", "可以", "要不要", "去哪", "多久", "啥")
QUESTION_WINDOW = 8

# What a complaint sounds like without the word 投诉: trips and attempts counted, a
# wait that does not end, how the caller was treated. Heard with a service named,
# the caller is asked before being transferred there (routing.router).
COMPLAINT_CUES = (
    r"(跑|去|来|交|打|问|改|补)了?[两三四五六七八九十几好多\d]+(趟|次|回|遍)",
    r"[两三四五六七八九十几好多\d]+(趟|次|回)了",
    r"还没(办|弄|好|下来|批|到|给)", r"一直(没|不|让我|拖|等)", "迟迟", "拖了", "拖着",
    "推来推去", "推诿", "踢皮球", "态度", "不耐烦", "敷衍", "刁难", "凭什么", "不合理",
    "太慢", "太差", "乱收费", "白跑", "不作为", "没人管", "没人接", "不给办", "过分",
    "说不清", "说不齐", "每次都不一样", "什么破", "糊弄", "折腾",
    # rules that keep changing, offices passing the caller on, no answer, things lost
    "互相推", "相互推", "一改再改", "说一套做一套", "变来变去", "标准老变", "太乱", r"效率.{0,2}低",
    "合理吗", "听谁的", r"没有?(任何)?(回复|答复|回音)", r"不给(票|发票|收据|说法|答复)", "弄丢", "搞丢",
    "耽误",
    # a broken online system
    "闪退", "报错", "打不开", "登不上", "进不去", "卡死", "维护中", r"(提交|上传|申报|登录|注册)\S{0,4}失败", "空号",
)
